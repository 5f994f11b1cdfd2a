package io.kvstash.api.prefix;

import io.kvstash.api.chat.ConversationFormat;
import io.kvstash.api.chat.PromptLimits;
import io.kvstash.api.config.KvProperties;
import io.kvstash.api.config.LimitsProperties;
import io.kvstash.api.problem.Problem;
import io.kvstash.api.problem.ProblemException;
import io.kvstash.engine.kv.ChunkLayout;
import io.kvstash.engine.kv.KvChunk;
import io.kvstash.engine.kv.KvGeometry;
import io.kvstash.engine.sampling.SamplingParams;
import io.kvstash.offload.ChunkKey;
import io.kvstash.offload.HotTier;
import io.kvstash.offload.SessionRecord;
import io.kvstash.offload.SessionRecord.Message;
import io.kvstash.offload.SessionStore;
import io.kvstash.offload.UnknownSessionException;
import io.kvstash.persistence.WarmStore;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import org.springframework.stereotype.Component;
import tools.jackson.core.type.TypeReference;
import tools.jackson.databind.json.JsonMapper;

/**
 * Shared prefixes ({@code /v1/prefixes}): a system prompt or a document that many conversations
 * start with, prefilled once and kept in the hot tier.
 *
 * <p>A prefix is a session of its tenant that nobody lists or continues (its <em>backing
 * session</em>): its KV is stored like any session's, and its full chunks are pinned in the hot
 * tier for as long as the prefix is registered (within {@code kvstash.kv.max-pinned}). A session
 * made from a prefix is a fork of the backing session, so it shares those chunks and the
 * half-filled tail as well; a one-off chat completion whose prompt tokens start with a prefix's
 * runs in such a fork too (see {@link #longestMatch}). Chunk keys start from the tenant, so a
 * prefix is never reused across tenants.
 *
 * <p>The registry (ids, names, owners, backing sessions) is one JSON value in the warm tier's
 * metadata; at start-up every prefix's chunks are loaded from the warm tier and pinned again.
 * Blocking: call from the store scheduler.
 */
@Component
public class PrefixRegistry implements AutoCloseable {
    private static final String META = "api.prefixes";
    private static final System.Logger LOG = System.getLogger(PrefixRegistry.class.getName());

    /** What the registry stores of a prefix. {@code text} is set for a text prefix, else the backing session holds the messages. */
    public record Entry(String id, String tenant, String sessionId, String name, long createdMillis, String text) {}

    /** A registered prefix with its tokens and what it keeps pinned. */
    public record Prefix(Entry entry, SessionRecord record, int pinnedChunks, long pinnedBytes, SessionStore.Residency residency) {}

    /** A prefix whose tokens start a prompt: its backing session to fork, and how many of the prompt's tokens it covers. */
    public record Match(String prefixId, String sessionId, int tokens) {}

    private final SessionStore sessions;
    private final HotTier hot;
    private final WarmStore warm;
    private final JsonMapper json;
    private final ConversationFormat format;
    private final LimitsProperties limits;
    private final PromptLimits promptLimits;
    private final long maxPinned;
    private final long chunkBytes;
    private final int chunkTokens;
    private final Counter reusedTokens;

    // Guarded by "this".
    private final Map<String, Entry> entries = new LinkedHashMap<>();
    private final Map<String, int[]> tokens = new java.util.HashMap<>();
    private final Map<String, List<KvChunk>> pins = new LinkedHashMap<>();
    private final Set<String> backing = ConcurrentHashMap.newKeySet();
    private long pinnedBytes;
    /** Bytes and prefixes of registrations still prefilling, counted against the limits. */
    private long reservedBytes;
    private final Map<String, Integer> registering = new java.util.HashMap<>();
    private boolean closed;

    public PrefixRegistry(SessionStore sessions, WarmStore warm, JsonMapper json, ConversationFormat format, LimitsProperties limits,
                          PromptLimits promptLimits, KvProperties kv, MeterRegistry meters) {
        this.promptLimits = promptLimits;
        this.sessions = sessions;
        this.hot = sessions.hotTier();
        this.warm = warm;
        this.json = json;
        this.format = format;
        this.limits = limits;
        this.maxPinned = kv.maxPinned().toBytes();
        KvGeometry g = hot.geometry();
        this.chunkTokens = g.chunkTokens();
        this.chunkBytes = ChunkLayout.of(g, g.format()).chunkBytes();
        this.reusedTokens = Counter.builder("kvstash.prefix.reused.tokens")
                .description("prompt tokens served from a registered prefix").register(meters);
        Gauge.builder("kvstash.prefix.pinned.bytes", this, PrefixRegistry::pinnedBytes).baseUnit("bytes")
                .description("hot-tier bytes pinned by registered prefixes").register(meters);
        Gauge.builder("kvstash.prefixes", this, r -> r.count()).description("registered prefixes").register(meters);
        load();
    }

    private void load() {
        Optional<byte[]> v = warm.getMeta(META);
        if (v.isEmpty() || v.get().length == 0) {
            return;
        }
        List<Entry> stored = json.readValue(v.get(), new TypeReference<List<Entry>>() {});
        boolean dropped = false;
        for (Entry e : stored) {
            SessionRecord r;
            try {
                r = sessions.get(e.tenant(), e.sessionId());
            } catch (UnknownSessionException gone) {
                LOG.log(System.Logger.Level.WARNING, "prefix " + e.id() + ": its backing session is gone; dropping it");
                dropped = true;
                continue;
            }
            synchronized (this) {
                entries.put(e.id(), e);
                tokens.put(e.id(), r.tokens());
                backing.add(e.sessionId());
            }
            try {
                sessions.restore(e.tenant(), e.sessionId());
                pin(e, r);
            } catch (RuntimeException ex) {
                LOG.log(System.Logger.Level.WARNING, "prefix " + e.id() + ": could not pin its chunks (" + ex
                        + "); sessions made from it recompute what is missing");
            }
        }
        if (dropped) {
            save();
        }
    }

    /**
     * Registers a prefix: {@code text} as it is (BOS first when the model wants it), or the opening
     * {@code messages} of a conversation as the chat format writes them; exactly one of the two.
     * Returns once the prefix is prefilled, stored and pinned.
     */
    public Prefix register(String tenant, String name, String text, List<Message> messages) {
        int[] ids = text != null
                ? sessions.engine().tokenizer().encode(text, sessions.engine().tokenizer().addBosByDefault(), false)
                : format.opening(messages);
        if (ids.length == 0) {
            throw ProblemException.invalid(text != null ? "text" : "messages", "the prefix has no tokens");
        }
        promptLimits.check(ids.length, "prefix", text != null ? "text" : "messages");
        long wantBytes = (long) (ids.length / chunkTokens) * chunkBytes;
        synchronized (this) {
            checkOpen();
            long owned = entries.values().stream().filter(e -> e.tenant().equals(tenant)).count() + registering.getOrDefault(tenant, 0);
            if (owned >= limits.maxPrefixes()) {
                throw ProblemException.limit(Problem.TOO_MANY_PREFIXES, "kvstash.limits.max-prefixes", null,
                        "this tenant already has " + owned + " prefixes, the most kvstash.limits.max-prefixes = " + limits.maxPrefixes()
                                + " allows; delete one first");
            }
            if (pinnedBytes + reservedBytes + wantBytes > maxPinned) {
                throw ProblemException.limit(Problem.TOO_MANY_PREFIXES, "kvstash.kv.max-pinned", null,
                        "pinning this prefix (" + wantBytes + " bytes) would take the prefixes past kvstash.kv.max-pinned = " + maxPinned
                                + " bytes (" + (pinnedBytes + reservedBytes) + " pinned now); delete a prefix first");
            }
            reservedBytes += wantBytes;
            registering.merge(tenant, 1, Integer::sum);
        }
        try {
            return prefill(tenant, name, text, messages, ids);
        } finally {
            synchronized (this) {
                reservedBytes -= wantBytes;
                registering.merge(tenant, -1, (a, b) -> a + b == 0 ? null : a + b);
            }
        }
    }

    private Prefix prefill(String tenant, String name, String text, List<Message> messages, int[] ids) {
        SessionRecord s = sessions.create(tenant);
        try {
            backing.add(s.id());
            SessionStore.TurnResult t = sessions.begin(tenant, s.id(), ids, messages == null ? List.of() : messages, result -> List.of(),
                    SamplingParams.greedy(), 0, false, null).result().join();
            Entry e = new Entry("pfx-" + UUID.randomUUID(), tenant, s.id(), name, System.currentTimeMillis(), text);
            synchronized (this) {
                checkOpen();
                entries.put(e.id(), e);
                tokens.put(e.id(), t.record().tokens());
                pin(e, t.record());
                save();
            }
            return describe(e);
        } catch (RuntimeException ex) {
            backing.remove(s.id());
            try {
                sessions.delete(tenant, s.id());
            } catch (RuntimeException cleanup) {
                ex.addSuppressed(cleanup);
            }
            throw ex instanceof CompletionException c && c.getCause() instanceof RuntimeException r ? r : ex;
        }
    }

    /** The tenant's prefix {@code id}. */
    public Prefix get(String tenant, String id) {
        return describe(entry(tenant, id));
    }

    /** The tenant's prefixes, oldest first. */
    public List<Prefix> list(String tenant) {
        List<Entry> mine;
        synchronized (this) {
            mine = entries.values().stream().filter(e -> e.tenant().equals(tenant))
                    .sorted(Comparator.comparingLong(Entry::createdMillis)).toList();
        }
        List<Prefix> out = new ArrayList<>();
        for (Entry e : mine) {
            try {
                out.add(describe(e));
            } catch (UnknownSessionException deletedMeanwhile) {
                // deleted by another request while listing
            }
        }
        return out;
    }

    /** Unpins and deletes the prefix; sessions made from it keep their copy of its chunks. */
    public void delete(String tenant, String id) {
        Entry e;
        synchronized (this) {
            e = entry(tenant, id);
            entries.remove(id);
            tokens.remove(id);
            unpin(id);
            save();
        }
        sessions.delete(tenant, e.sessionId());
        backing.remove(e.sessionId());
    }

    /** The backing session of the tenant's prefix {@code id}, to fork a session from. */
    public String sessionOf(String tenant, String id) {
        return entry(tenant, id).sessionId();
    }

    /** Whether {@code sessionId} backs a prefix (such sessions are not the caller's conversations). */
    public boolean isBacking(String sessionId) {
        return backing.contains(sessionId);
    }

    /** The tenant's longest prefix whose tokens start {@code prompt} and leave at least one token of it after them. */
    public Optional<Match> longestMatch(String tenant, int[] prompt) {
        Match best = null;
        synchronized (this) {
            for (Entry e : entries.values()) {
                int[] p = tokens.get(e.id());
                if (!e.tenant().equals(tenant) || p == null || p.length >= prompt.length || (best != null && p.length <= best.tokens())) {
                    continue;
                }
                if (Arrays.equals(p, 0, p.length, prompt, 0, p.length)) {
                    best = new Match(e.id(), e.sessionId(), p.length);
                }
            }
        }
        return Optional.ofNullable(best);
    }

    /** Counts prompt tokens served from a prefix (for the metrics). */
    public void reused(Match m) {
        reusedTokens.increment(m.tokens());
    }

    public synchronized long pinnedBytes() {
        return pinnedBytes;
    }

    public synchronized int count() {
        return entries.size();
    }

    private synchronized Entry entry(String tenant, String id) {
        Entry e = id == null ? null : entries.get(id);
        if (e == null || !e.tenant().equals(tenant)) {
            throw new ProblemException(Problem.UNKNOWN_PREFIX, "no prefix '" + id + "'", null, null);
        }
        return e;
    }

    private Prefix describe(Entry e) {
        SessionRecord r = sessions.get(e.tenant(), e.sessionId());
        SessionStore.Residency residency = sessions.residency(r);
        int pinned;
        synchronized (this) {
            pinned = pins.getOrDefault(e.id(), List.of()).size();
        }
        return new Prefix(e, r, pinned, pinned * chunkBytes, residency);
    }

    /** Pins the prefix's full chunks that the hot tier has (guarded by "this" or single-threaded start-up). */
    private synchronized void pin(Entry e, SessionRecord r) {
        List<KvChunk> held = new ArrayList<>();
        for (ChunkKey k : r.chunkKeys()) {
            KvChunk c = hot.acquire(k);
            if (c != null) {
                held.add(c);
            }
        }
        pins.put(e.id(), held);
        pinnedBytes += held.size() * chunkBytes;
    }

    private synchronized void unpin(String id) {
        List<KvChunk> held = pins.remove(id);
        if (held != null) {
            for (KvChunk c : held) {
                hot.release(c);
            }
            pinnedBytes -= held.size() * chunkBytes;
        }
    }

    private synchronized void save() {
        warm.putMeta(META, json.writeValueAsBytes(new ArrayList<>(entries.values())));
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("the prefix registry is closed");
        }
    }

    /** Releases the pins (the hot tier is closed after this, with the serving stack). */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (String id : new ArrayList<>(pins.keySet())) {
            unpin(id);
        }
    }
}
