package io.kvstash.api.chat;

import io.kvstash.api.config.LimitsProperties;
import io.kvstash.api.config.SessionsProperties;
import io.kvstash.api.problem.Problem;
import io.kvstash.api.problem.ProblemException;
import io.kvstash.api.problem.Problems;
import io.kvstash.engine.InferenceEngine;
import io.kvstash.engine.sampling.SamplingParams;
import io.kvstash.engine.scheduler.Generation;
import io.kvstash.engine.scheduler.GenerationListener;
import io.kvstash.engine.scheduler.GenerationResult;
import io.kvstash.offload.SessionRecord;
import io.kvstash.offload.SessionRecord.Message;
import io.kvstash.offload.SessionStore;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.kvstash.api.prefix.PrefixRegistry;
import io.kvstash.offload.UnknownSessionException;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.springframework.stereotype.Service;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.core.scheduler.Scheduler;

/**
 * Runs chat turns on the engine's scheduler and hands their output to the web layer as a
 * {@link Flux}: text deltas as tokens are sampled, then one {@link TurnEvent.Done} once the turn
 * is stored. The blocking part of starting a turn (reading the session from RocksDB, tokenizing,
 * resuming the KV) runs on the store scheduler, never on a Netty event loop; sampling runs on the
 * engine's scheduling thread. Cancelling the returned flux (a client that disconnects) cancels the
 * generation before its next step.
 */
@Service
public class ChatTurns {
    private final SessionStore sessions;
    private final InferenceEngine engine;
    private final LimitsProperties limits;
    private final Scheduler io;
    private final MeterRegistry meters;
    private final Counter generatedTokens;
    private final Counter cachedTokens;
    private final Counter computedTokens;
    /** The cached prompt tokens by where their KV came from: hot, warm, remote chunks, the stored tail. */
    private final Counter[] cachedByTier = new Counter[4];
    private final ConversationFormat format;
    private final PrefixRegistry prefixes;
    private final PromptLimits promptLimits;
    private final SessionsProperties policy;

    public ChatTurns(SessionStore sessions, InferenceEngine engine, LimitsProperties limits, Scheduler storeScheduler, MeterRegistry meters,
                     ConversationFormat format, PrefixRegistry prefixes, PromptLimits promptLimits, SessionsProperties policy) {
        int chunk = engine.kvStore().geometry().chunkTokens();
        if (policy.contextPolicy() == SessionsProperties.ContextPolicy.SHIFT && (long) (policy.sinkChunks() + 1) * chunk > engine.contextLength()) {
            throw new IllegalArgumentException("kvstash.sessions.sink-chunks = " + policy.sinkChunks() + " chunks of " + chunk
                    + " tokens leave no chunk to shift in kvstash.engine.context-length = " + engine.contextLength()
                    + " (the shift policy needs at least one more chunk)");
        }
        this.policy = policy;
        this.promptLimits = promptLimits;
        this.sessions = sessions;
        this.format = format;
        this.prefixes = prefixes;
        this.engine = engine;
        this.limits = limits;
        this.io = storeScheduler;
        this.meters = meters;
        this.generatedTokens = Counter.builder("kvstash.tokens.generated").description("tokens sampled").register(meters);
        this.cachedTokens = Counter.builder("kvstash.prompt.tokens").tag("source", "cache")
                .description("prompt tokens whose KV came from the hot or warm tier").register(meters);
        this.computedTokens = Counter.builder("kvstash.prompt.tokens").tag("source", "computed")
                .description("prompt tokens prefilled").register(meters);
        String[] tiers = {"hot", "warm", "remote", "tail"};
        for (int i = 0; i < tiers.length; i++) {
            cachedByTier[i] = Counter.builder("kvstash.prompt.cached.tokens").tag("tier", tiers[i])
                    .description("prompt tokens whose KV came from this tier (tail: the session's stored partial chunk)").register(meters);
        }
    }

    /** A turn that has been admitted: its events (subscribe once). */
    public record LiveTurn(Flux<TurnEvent> events) {}

    /** The reply length a request gets: its own, or the limit; more than the limit is a 400 naming it. */
    public int maxTokens(Integer requested, String param) {
        if (requested == null) {
            return limits.maxTokensPerReply();
        }
        if (requested < 1) {
            throw ProblemException.invalid(param, param + " must be at least 1, got " + requested);
        }
        if (requested > limits.maxTokensPerReply()) {
            throw ProblemException.limit(Problem.REPLY_TOO_LONG, "kvstash.limits.max-tokens-per-reply", param,
                    param + " " + requested + " exceeds kvstash.limits.max-tokens-per-reply = " + limits.maxTokensPerReply());
        }
        return requested;
    }

    /**
     * A user turn on a stored session: appends {@code added} (as {@link ConversationFormat} writes it) and generates the reply.
     * Past the context length, the session follows {@code kvstash.sessions.context-policy} ({@link SessionsProperties}).
     */
    public Mono<LiveTurn> continueSession(String tenant, String sessionId, List<Message> added, SamplingParams params, int maxTokens,
                                          List<String> stops) {
        return Mono.fromCallable(() -> {
            if (prefixes.isBacking(sessionId)) {
                throw new UnknownSessionException(sessionId);
            }
            SessionRecord r = sessions.get(tenant, sessionId);
            int[] tokens = format.continuation(r, added);
            // What the model reads: the tokens the KV stands for, then the new ones.
            int read = r.tokens().length - r.shiftedTokens() + tokens.length;
            boolean resumed = r.tokens().length > 0;
            return switch (policy.contextPolicy()) {
                case REJECT -> {
                    checkPrompt(read);
                    yield start(tenant, sessionId, tokens, added, params, maxTokens, stops, true, resumed, null,
                            (listener, reply) -> sessions.begin(tenant, sessionId, tokens, added, reply, params, maxTokens, false, listener));
                }
                case SHIFT -> {
                    int sink = policy.sinkChunks() * engine.kvStore().geometry().chunkTokens();
                    // The new tokens must fit after the sinks; the rest of the KV makes room by shifting.
                    checkPrompt(Math.min(read, sink + tokens.length));
                    yield start(tenant, sessionId, tokens, added, params, maxTokens, stops, true, resumed, null,
                            (listener, reply) -> sessions.beginShifting(tenant, sessionId, tokens, added, reply, params, maxTokens, false,
                                    listener, policy.sinkChunks()));
                }
                case TRUNCATE -> {
                    if (read + replyRoom(maxTokens) <= engine.contextLength()) {
                        checkPrompt(read);
                        yield start(tenant, sessionId, tokens, added, params, maxTokens, stops, true, resumed, null,
                                (listener, reply) -> sessions.begin(tenant, sessionId, tokens, added, reply, params, maxTokens, false, listener));
                    }
                    Truncation t = truncate(r, added, replyRoom(maxTokens));
                    checkPrompt(t.tokens.length);
                    yield start(tenant, sessionId, t.tokens, added, params, maxTokens, stops, true, resumed, null,
                            (listener, reply) -> sessions.beginTruncated(tenant, sessionId, r.version(), t.tokens, t.dropped, added, reply, params,
                                    maxTokens, false, listener));
                }
            };
        }).subscribeOn(io);
    }

    /** Room the truncate policy leaves for a reply: {@code max_tokens}, at most a quarter of the context. */
    private int replyRoom(int maxTokens) {
        return Math.min(maxTokens, Math.max(1, engine.contextLength() / 4));
    }

    private record Truncation(int[] tokens, int dropped) {}

    /**
     * Drops the oldest whole turns after the leading system messages (a message and the replies up
     * to the next user message) until the conversation with {@code added} fits the context with
     * {@code room} for the reply; never the system messages, never the new ones.
     */
    private Truncation truncate(SessionRecord r, List<Message> added, int room) {
        List<Message> all = new java.util.ArrayList<>(r.messages());
        all.addAll(added);
        int system = SessionRecord.leadingSystemMessages(all);
        int firstNew = r.messages().size();
        int dropped = r.droppedMessages();
        int[] kept = null;
        while (kept == null || kept.length + room > engine.contextLength()) {
            if (system + dropped >= firstNew) {
                List<Message> least = new java.util.ArrayList<>(all.subList(0, system));
                least.addAll(added);
                int tokens = format.prompt(least).length;
                checkPrompt(tokens); // past kvstash.limits.max-prompt-tokens, or no room at all: that limit is named
                throw ProblemException.limit(Problem.PROMPT_TOO_LONG, "kvstash.engine.context-length", "content", "the new message"
                        + (system > 0 ? " with the system prompt" : "") + " has " + tokens + " tokens, leaving no room for a reply of "
                        + room + " in kvstash.engine.context-length = " + engine.contextLength() + " even with every earlier turn dropped");
            }
            dropped++;
            while (system + dropped < firstNew && !all.get(system + dropped).role().equals("user")) {
                dropped++;
            }
            List<Message> held = new java.util.ArrayList<>(all.subList(0, system));
            held.addAll(all.subList(system + dropped, all.size()));
            kept = format.prompt(held);
        }
        return new Truncation(kept, dropped);
    }

    /**
     * A one-off completion of {@code promptText} (no session for the caller): it runs in a
     * session made for it and deleted after, so that its chunks are content-addressed like any
     * other: a later request of the same tenant with the same prefix resumes them from the tiers.
     */
    public Mono<LiveTurn> complete(String tenant, String promptText, List<Message> messages, SamplingParams params, int maxTokens,
                                   List<String> stops) {
        return complete(tenant, () -> engine.tokenizer().encode(promptText, engine.tokenizer().addBosByDefault(), false), messages, params,
                maxTokens, stops);
    }

    /** A one-off chat completion of {@code messages}, written as {@link ConversationFormat#prompt} writes a conversation. */
    public Mono<LiveTurn> completeChat(String tenant, List<Message> messages, SamplingParams params, int maxTokens, List<String> stops) {
        return complete(tenant, () -> format.prompt(messages), messages, params, maxTokens, stops);
    }

    /**
     * As {@link #complete(String, String, List, SamplingParams, int, List)} with the prompt's tokens
     * made by {@code prompt}. When the prompt starts with one of the tenant's registered prefixes,
     * the one-off session is a fork of the prefix's, so that its KV (pinned chunks and tail) is reused.
     */
    public Mono<LiveTurn> complete(String tenant, java.util.function.Supplier<int[]> prompt, List<Message> messages, SamplingParams params,
                                   int maxTokens, List<String> stops) {
        return Mono.fromCallable(() -> {
            int[] tokens = prompt.get();
            if (tokens.length == 0) {
                throw ProblemException.invalid("prompt", "the prompt is empty");
            }
            checkPrompt(tokens.length);
            String id = null;
            int[] fresh = tokens;
            Optional<PrefixRegistry.Match> match = prefixes.longestMatch(tenant, tokens);
            if (match.isPresent()) {
                try {
                    id = sessions.fork(tenant, match.get().sessionId()).id();
                    fresh = Arrays.copyOfRange(tokens, match.get().tokens(), tokens.length);
                    prefixes.reused(match.get());
                } catch (UnknownSessionException deletedMeanwhile) {
                    fresh = tokens;
                }
            }
            if (id == null) {
                id = sessions.create(tenant).id();
            }
            String oneOff = id;
            try {
                return start(tenant, oneOff, fresh, messages, params, maxTokens, stops, false, false,
                        () -> io.schedule(() -> deleteQuietly(tenant, oneOff)));
            } catch (RuntimeException e) {
                deleteQuietly(tenant, oneOff);
                throw e;
            }
        }).subscribeOn(io);
    }

    /** Stores a session's opening messages (a system prompt) as tokens, without generating. */
    public Mono<SessionRecord> prime(String tenant, String sessionId, List<Message> opening) {
        return Mono.fromCallable(() -> {
            int[] tokens = format.opening(opening);
            checkPrompt(tokens.length);
            return sessions.begin(tenant, sessionId, tokens, opening, result -> List.of(), SamplingParams.greedy(), 0, false, null);
        }).subscribeOn(io).flatMap(t -> Mono.fromFuture(t.result())).map(SessionStore.TurnResult::record);
    }

    private void checkPrompt(int promptTokens) {
        promptLimits.check(promptTokens, "prompt", "messages");
    }

    private void deleteQuietly(String tenant, String id) {
        try {
            sessions.delete(tenant, id);
        } catch (RuntimeException e) {
            System.getLogger(ChatTurns.class.getName()).log(System.Logger.Level.WARNING,
                    "could not delete one-off session " + id + ": " + e);
        }
    }

    /** Starts a turn of {@link SessionStore} for {@link #start}, given its listener and how the reply is recorded. */
    @FunctionalInterface
    private interface TurnStarter {
        SessionStore.Turn begin(GenerationListener listener, java.util.function.Function<GenerationResult, List<Message>> reply);
    }

    private LiveTurn start(String tenant, String sessionId, int[] tokens, List<Message> added, SamplingParams params, int maxTokens,
                           List<String> stops, boolean keepSession, boolean resumed, Runnable after) {
        return start(tenant, sessionId, tokens, added, params, maxTokens, stops, keepSession, resumed, after,
                (listener, reply) -> sessions.begin(tenant, sessionId, tokens, added, reply, params, maxTokens, false, listener));
    }

    private LiveTurn start(String tenant, String sessionId, int[] tokens, List<Message> added, SamplingParams params, int maxTokens,
                           List<String> stops, boolean keepSession, boolean resumed, Runnable after, TurnStarter starter) {
        Sinks.Many<TurnEvent> sink = Sinks.many().unicast().onBackpressureBuffer();
        StopMatcher matcher = new StopMatcher(stops == null ? List.of() : stops);
        long started = System.nanoTime();
        Cancel cancel = new Cancel();
        GenerationListener listener = new GenerationListener() {
            boolean first = true;

            @Override
            public void onToken(int token, String text) {
                if (first) {
                    first = false;
                    Timer.builder("kvstash.turn.first.token").tag("resumed", Boolean.toString(resumed))
                            .description("time from admission to the first sampled token").register(meters)
                            .record(System.nanoTime() - started, TimeUnit.NANOSECONDS);
                }
                String visible = matcher.accept(text);
                if (!visible.isEmpty()) {
                    sink.tryEmitNext(new TurnEvent.Delta(visible));
                }
                if (matcher.stopped()) {
                    cancel.request();
                }
            }

            @Override
            public void onComplete(GenerationResult result) {
                String rest = matcher.flush();
                if (!rest.isEmpty()) {
                    sink.tryEmitNext(new TurnEvent.Delta(rest));
                }
            }
        };
        SessionStore.Turn turn = starter.begin(listener, result -> List.of(new Message("assistant", matcher.text())));
        cancel.bind(turn.generation());
        turn.result().whenComplete((r, error) -> {
            try {
                report(r, error, sink, matcher, keepSession ? sessionId : null);
            } finally {
                if (after != null) {
                    after.run();
                }
            }
        });
        return new LiveTurn(sink.asFlux().doOnCancel(cancel::request));
    }

    private void report(SessionStore.TurnResult r, Throwable error, Sinks.Many<TurnEvent> sink, StopMatcher matcher, String sessionId) {
        if (error != null) {
            meters.counter("kvstash.turns", "outcome", "error").increment();
            sink.tryEmitError(Problems.of(error));
            return;
        }
        GenerationResult g = r.generation();
        String reason = switch (g.reason()) {
            case STOP -> "stop";
            case LENGTH, CONTEXT -> "length";
            case CANCELLED -> matcher.stopped() ? "stop" : "cancelled";
            case ERROR -> "error";
        };
        generatedTokens.increment(g.tokens().length);
        cachedTokens.increment(r.cachedTokens());
        int chunk = sessions.geometry().chunkTokens();
        cachedByTier[0].increment((double) r.hotChunks() * chunk);
        cachedByTier[1].increment((double) r.warmChunks() * chunk);
        cachedByTier[2].increment((double) r.remoteChunks() * chunk);
        cachedByTier[3].increment(r.restoredTailTokens());
        computedTokens.increment(r.computedTokens());
        meters.counter("kvstash.turns", "outcome", reason).increment();
        TurnOutcome outcome = new TurnOutcome(sessionId, matcher.text(), reason, r.promptTokens(),
                g.tokens().length, r.cachedTokens(), r.hotChunks(), r.warmChunks(), r.remoteChunks());
        sink.tryEmitNext(new TurnEvent.Done(outcome));
        sink.tryEmitComplete();
    }

    /** Cancels a generation that may not have been handed back yet (a stop sequence seen on the first token). */
    private static final class Cancel {
        private Generation generation;
        private boolean requested;

        synchronized void bind(Generation g) {
            generation = g;
            if (requested) {
                g.cancel();
            }
        }

        synchronized void request() {
            requested = true;
            if (generation != null) {
                generation.cancel();
            }
        }
    }
}
