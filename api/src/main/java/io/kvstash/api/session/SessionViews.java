package io.kvstash.api.session;

import io.kvstash.api.chat.TurnOutcome;
import io.kvstash.offload.SessionRecord;
import io.kvstash.offload.SessionStore;
import java.time.Instant;
import java.util.List;

/** Response bodies of the sessions API (snake_case on the wire). */
public final class SessionViews {
    private SessionViews() {
    }

    public record MessageView(String role, String content) {
        static MessageView of(SessionRecord.Message m) {
            return new MessageView(m.role(), m.content());
        }
    }

    /**
     * Where a session's KV chunks are. {@code tier}: {@code hot} when every chunk is in memory,
     * {@code warm} when none is missing but some are only on disk, {@code none} when it has no chunks
     * or some were dropped (its next turn recomputes them). With parking ({@code kvstash.engine.sparse.park.*}):
     * {@code parkedChunks} of its chunks a turn reads from the warm tier only, and what a turn holds for them
     * besides the hot chunks: their key summaries ({@code summaryBytes}) and its transient slots ({@code transientBytes}).
     */
    public record ResidencyView(String tier, int hotChunks, int warmChunks, int missingChunks, long hotBytes, long warmBytes,
                                int parkedChunks, long summaryBytes, long transientBytes) {
        public static ResidencyView of(SessionStore.Residency r) {
            int total = r.hotChunks() + r.warmChunks() + r.missingChunks();
            String tier = total == 0 || r.missingChunks() > 0 ? "none" : r.warmChunks() == 0 ? "hot" : "warm";
            return new ResidencyView(tier, r.hotChunks(), r.warmChunks(), r.missingChunks(), r.hotBytes(), r.warmBytes(),
                    r.parkedChunks(), r.summaryBytes(), r.transientBytes());
        }
    }

    /**
     * A session: every message; {@code tokenCount} tokens of the conversation as the model reads it,
     * {@code kvTokens} of them with KV; past the context length, {@code droppedMessages} messages
     * after the system messages that the tokens no longer hold (truncate policy) and
     * {@code shiftedTokens} tokens after the first {@code sinkTokens} that the KV no longer holds (shift policy).
     */
    public record SessionView(String id, Instant createdAt, Instant updatedAt, long version, int tokenCount, int kvTokens,
                              int droppedMessages, int sinkTokens, int shiftedTokens,
                              List<MessageView> messages, ResidencyView residency, SessionDefaults defaults) {
        static SessionView of(SessionRecord r, SessionStore.Residency residency, SessionDefaults defaults) {
            return new SessionView(r.id(), Instant.ofEpochMilli(r.createdMillis()), Instant.ofEpochMilli(r.updatedMillis()), r.version(),
                    r.tokens().length, r.kvLength(), r.droppedMessages(), r.sinkTokens(), r.shiftedTokens(),
                    r.messages().stream().map(MessageView::of).toList(), ResidencyView.of(residency), defaults);
        }
    }

    public record SessionSummary(String id, Instant createdAt, Instant updatedAt, int tokenCount, int messageCount) {
        static SessionSummary of(SessionRecord r) {
            return new SessionSummary(r.id(), Instant.ofEpochMilli(r.createdMillis()), Instant.ofEpochMilli(r.updatedMillis()),
                    r.tokens().length, r.messages().size());
        }
    }

    /** A page of the caller's sessions, in id order; pass {@code next_after} as {@code after} for the next one. */
    public record SessionPage(List<SessionSummary> data, boolean hasMore, String nextAfter) {}

    public record Usage(int promptTokens, int completionTokens, int cachedTokens, int hotChunks, int warmChunks, int remoteChunks) {}

    /** The assistant's reply to a posted message. */
    public record TurnView(String sessionId, MessageView message, String finishReason, Usage usage) {
        static TurnView of(TurnOutcome o) {
            return new TurnView(o.sessionId(), new MessageView("assistant", o.text()), o.finishReason(),
                    new Usage(o.promptTokens(), o.completionTokens(), o.cachedTokens(), o.hotChunks(), o.warmChunks(), o.remoteChunks()));
        }
    }

    /** A streamed piece of the reply ({@code event: delta}). */
    public record DeltaView(String content) {}
}
