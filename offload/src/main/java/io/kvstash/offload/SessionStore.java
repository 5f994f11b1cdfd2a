package io.kvstash.offload;

import io.kvstash.engine.InferenceEngine;
import io.kvstash.engine.kv.ChunkLayout;
import io.kvstash.engine.kv.KvCache;
import io.kvstash.engine.kv.KvChunk;
import io.kvstash.engine.kv.KvGeometry;
import io.kvstash.engine.sampling.SamplingParams;
import io.kvstash.engine.scheduler.BatchScheduler;
import io.kvstash.engine.scheduler.ContextShift;
import io.kvstash.engine.scheduler.Generation;
import io.kvstash.engine.scheduler.GenerationListener;
import io.kvstash.engine.scheduler.GenerationResult;
import io.kvstash.engine.scheduler.StopReason;
import io.kvstash.persistence.ChunkHeader;
import io.kvstash.persistence.ModelFingerprint;
import io.kvstash.persistence.NewChunk;
import io.kvstash.persistence.SessionScan;
import io.kvstash.persistence.WarmStore;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Function;

/**
 * Sessions over the KV tiers: a session's record (tokens, messages, chunk keys, tail) lives in
 * the warm tier; its full chunks live in the {@link HotTier} while used and recently used, and in
 * the warm tier (RocksDB) once written. A turn resumes the session's KV from the hot tier, else
 * from the warm tier with one batched read, else recomputes it, then prefills only the new tokens
 * and generates on the engine's {@link BatchScheduler}. When the turn is done, the new chunks and
 * the new record are written in one atomic batch (write-through, the default) before the turn's
 * future completes: an acknowledged turn survives a crash.
 *
 * <p>Chunks are content-addressed ({@link ChunkKey}): sessions with a common prefix share its
 * chunks, in both tiers, and they are reference-counted by the records that list them. A chunk no
 * record lists is deleted after a grace period ({@link #collectGarbage}). When the warm tier's
 * bytes exceed the disk budget, the least recently used sessions lose their chunks (never their
 * tokens or messages): their next turn recomputes the KV.
 *
 * <p>One turn at a time per session ({@link SessionBusyException} otherwise). Sessions belong to a
 * tenant; another tenant's session is reported as unknown.
 */
public final class SessionStore implements AutoCloseable {
    /**
     * @param warmBudgetBytes most bytes of chunks and records in the warm tier (counted as stored,
     *                        before RocksDB's compression)
     * @param writeThrough    write a turn's new chunks with its record (durable KV); false writes
     *                        chunks only when the hot tier evicts them (the record then lists only
     *                        chunks already stored, and a crash costs a recompute, never a session)
     * @param orphanGrace     how long a chunk no record lists stays, in case a session takes it up again
     */
    public record Config(long warmBudgetBytes, boolean writeThrough, Duration orphanGrace, Parking parking) {
        public Config {
            if (warmBudgetBytes < 1) {
                throw new IllegalArgumentException("warm budget must be positive, got " + warmBudgetBytes);
            }
            Objects.requireNonNull(orphanGrace, "orphanGrace");
            if (orphanGrace.isNegative()) {
                throw new IllegalArgumentException("orphan grace must not be negative, got " + orphanGrace);
            }
            Objects.requireNonNull(parking, "parking");
        }

        /** Without parking. */
        public Config(long warmBudgetBytes, boolean writeThrough, Duration orphanGrace) {
            this(warmBudgetBytes, writeThrough, orphanGrace, Parking.OFF);
        }

        public static Config defaults() {
            return new Config(Long.MAX_VALUE, true, Duration.ofMinutes(10));
        }

        public Config withParking(Parking parking) {
            return new Config(warmBudgetBytes, writeThrough, orphanGrace, parking);
        }
    }

    /**
     * Which full chunks of a session's KV a turn keeps in the warm tier only ({@link KvCache#park}): sparse
     * decode reads them from there into per-sequence transient slots, never into the hot tier. Parked are
     * the chunks after the sink (chunk 0) and before the newest {@code residentChunks}. They are read
     * into at most {@code transientChunks} slots: a layer that needs more at once (a prefill, a dense
     * layer, a sequence under the sparse minimum) attends in rounds, reading chunks again.
     *
     * @param enabled         park or not (needs sparse decode: parked chunks are chosen by their key summaries)
     * @param residentChunks  newest full chunks that stay in the hot tier (the sink chunk 0 always does; the tail is never a full chunk)
     * @param transientChunks chunk-sized off-heap slots per sequence that parked chunks are read into
     * @param prefetch        read the chunks the next layer needed last step on a background thread while a layer attends
     * @param summaryBytes    heap bytes of parked chunks' key summaries kept across turns (least recently used out; 0 keeps
     *                        none): a turn parks a chunk kept here without reading its body back to summarise it
     */
    public record Parking(boolean enabled, int residentChunks, int transientChunks, boolean prefetch, long summaryBytes) {
        public static final Parking OFF = new Parking(false, 0, 1, false, 0);
        /**
         * The default {@code summaryBytes}: 64 MiB of the heap, the key sketches of about 1,600 stories15M chunks (100,000
         * positions; a 512 MiB heap, the Helm chart's default, keeps room for the rest).
         */
        public static final long DEFAULT_SUMMARY_BYTES = 64L << 20;

        /** Parking with the default {@link #DEFAULT_SUMMARY_BYTES} of summaries kept across turns. */
        public Parking(boolean enabled, int residentChunks, int transientChunks, boolean prefetch) {
            this(enabled, residentChunks, transientChunks, prefetch, DEFAULT_SUMMARY_BYTES);
        }

        public Parking {
            if (residentChunks < 0) {
                throw new IllegalArgumentException("resident chunks must not be negative, got " + residentChunks);
            }
            if (transientChunks < 1) {
                throw new IllegalArgumentException("transient chunks must be at least 1, got " + transientChunks);
            }
            if (summaryBytes < 0) {
                throw new IllegalArgumentException("summary bytes must not be negative, got " + summaryBytes);
            }
        }

        /**
         * The end (exclusive) of the chunks parked in a KV of {@code fullChunks} full chunks; they start at
         * chunk 1, so an end of 1 or less parks nothing.
         */
        public int parkedEnd(int fullChunks) {
            return enabled ? fullChunks - residentChunks : 0;
        }

        /** How many chunks a KV of {@code fullChunks} full chunks parks. */
        public int parked(int fullChunks) {
            return Math.max(0, parkedEnd(fullChunks) - 1);
        }
    }

    /** Where a turn's KV came from, and what it produced. */
    public record TurnResult(SessionRecord record, GenerationResult generation, int promptTokens, int hotChunks, int warmChunks,
                             int remoteChunks, int restoredTailTokens, int computedTokens, Footprint footprint) {
        /** Prompt tokens whose KV came from a tier instead of being computed. */
        public int cachedTokens() {
            return promptTokens - computedTokens;
        }
    }

    /**
     * Where a session's chunks are now. With parking: {@code parkedChunks} of its chunks a turn reads from
     * the warm tier instead of the hot tier, and what a turn then holds besides its hot chunks: their key
     * summaries ({@code summaryBytes}, heap) and its transient slots ({@code transientBytes}, off-heap).
     */
    public record Residency(int hotChunks, int warmChunks, int missingChunks, long hotBytes, long warmBytes, int parkedChunks,
                            long summaryBytes, long transientBytes) {
        public Residency(int hotChunks, int warmChunks, int missingChunks, long hotBytes, long warmBytes) {
            this(hotChunks, warmChunks, missingChunks, hotBytes, warmBytes, 0, 0, 0);
        }
    }

    /**
     * What a turn's KV held at its end: full chunks parked in the warm tier, bytes of its chunks resident in
     * the hot tier (the tail included), of the key summaries it computed (heap) and of its transient slots.
     */
    public record Footprint(int parkedChunks, long residentBytes, long summaryBytes, long transientBytes) {}

    private final InferenceEngine engine;
    private final HotTier hot;
    private final WarmStore warm;
    private final RemoteTier remote;
    private final BatchScheduler scheduler;
    private final Config config;
    private final Clock clock;
    private final int chunkTokens;
    private final long chunkBytes;
    private final io.kvstash.engine.model.ModelFingerprint model;
    private final ChunkHeader header;
    private final ExecutorService persister;
    private final Parking parking;
    private final WarmChunkFetcher parkedFetcher; // null without parking
    private final ParkedSummaries summaries; // null without parking
    private final Map<String, Boolean> busy = new ConcurrentHashMap<>();
    // Chunks turns asked the warm tier for: read and used, or absent (the hot tier counts its own).
    private final LongAdder warmChunkHits = new LongAdder();
    private final LongAdder warmChunkMisses = new LongAdder();
    private final LongAdder summaryHits = new LongAdder(); // parked chunks a turn took from the kept summaries

    // Bookkeeping of the warm tier, rebuilt from the records at open; guarded by "this".
    private final Map<ChunkKey, Integer> refs = new HashMap<>();
    private final Set<ChunkKey> stored = new HashSet<>();
    private final Map<ChunkKey, Long> orphanSince = new HashMap<>();
    private final Map<String, Long> lastUsed = new HashMap<>();
    private final Map<String, Integer> recordBytes = new HashMap<>();
    private long recordBytesTotal;

    private SessionStore(InferenceEngine engine, BatchScheduler scheduler, WarmStore warm, RemoteTier remote, Config config, Clock clock) {
        if (!(engine.kvStore() instanceof HotTier tier)) {
            throw new IllegalArgumentException("the engine's KV store must be a HotTier (open the engine with HotTier::new stores)");
        }
        this.engine = engine;
        this.hot = tier;
        this.warm = warm;
        this.remote = remote;
        this.scheduler = scheduler;
        this.config = config;
        this.clock = clock;
        KvGeometry g = tier.geometry();
        this.chunkTokens = g.chunkTokens();
        this.chunkBytes = ChunkLayout.of(g, g.format()).chunkBytes();
        this.model = engine.fingerprint();
        this.header = new ChunkHeader((byte) g.format().ordinal(), chunkTokens, ModelFingerprint.of(model.bytes()));
        this.parking = config.parking();
        if (parking.enabled() && !engine.sparse().enabled()) {
            throw new IllegalArgumentException("parking chunks needs sparse decode (parked chunks are chosen by their key summaries):"
                    + " the engine was opened without it");
        }
        this.parkedFetcher = parking.enabled() ? new WarmChunkFetcher(warm, g, model, this::lost) : null;
        this.summaries = parking.enabled() ? new ParkedSummaries(parking.summaryBytes()) : null;
        this.persister = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "kvstash-session-io");
            t.setDaemon(true);
            return t;
        });
        hot.writeBackTo((key, chunk) -> {
            warm.putChunks(List.of(new NewChunk(key.bytes(), header, bytesOf(chunk))));
            synchronized (this) {
                stored.add(key);
            }
        });
    }

    /** Opens the session layer over an engine whose KV store is a {@link HotTier}, reading every stored record once. */
    public static SessionStore open(InferenceEngine engine, BatchScheduler scheduler, WarmStore warm, Config config) {
        return open(engine, scheduler, warm, null, config, Clock.systemUTC());
    }

    /**
     * As {@link #open(InferenceEngine, BatchScheduler, WarmStore, Config)} with a shared {@code remote}
     * tier (null for none): turns look there for chunks neither local tier has, and offer it the
     * chunks they compute. The caller keeps owning (and closes) {@code remote}.
     */
    public static SessionStore open(InferenceEngine engine, BatchScheduler scheduler, WarmStore warm, RemoteTier remote, Config config) {
        return open(engine, scheduler, warm, remote, config, Clock.systemUTC());
    }

    static SessionStore open(InferenceEngine engine, BatchScheduler scheduler, WarmStore warm, Config config, Clock clock) {
        return open(engine, scheduler, warm, null, config, clock);
    }

    static SessionStore open(InferenceEngine engine, BatchScheduler scheduler, WarmStore warm, RemoteTier remote, Config config,
                             Clock clock) {
        SessionStore s = new SessionStore(engine, scheduler, warm, remote, config, clock);
        s.scan();
        return s;
    }

    private synchronized void scan() {
        long now = clock.millis();
        try (SessionScan it = warm.scanSessions(null)) {
            while (it.hasNext()) {
                byte[] id = it.next();
                Optional<byte[]> value = warm.getSession(id);
                if (value.isEmpty()) {
                    continue;
                }
                SessionRecord r;
                try {
                    r = SessionRecord.decode(value.get());
                } catch (IllegalArgumentException e) {
                    System.getLogger(SessionStore.class.getName()).log(System.Logger.Level.WARNING,
                            "skipping unreadable session record " + new String(id, StandardCharsets.UTF_8) + ": " + e.getMessage());
                    continue;
                }
                for (ChunkKey k : r.chunkKeys()) {
                    refs.merge(k, 1, Integer::sum);
                    stored.add(k);
                }
                lastUsed.put(r.id(), r.updatedMillis());
                recordBytes.put(r.id(), value.get().length);
                recordBytesTotal += value.get().length;
            }
        }
        orphanSince.clear();
        for (ChunkKey k : stored) {
            if (refs.getOrDefault(k, 0) == 0) {
                orphanSince.put(k, now);
            }
        }
    }

    public InferenceEngine engine() {
        return engine;
    }

    public HotTier hotTier() {
        return hot;
    }

    /** The shared remote tier, or null when there is none. */
    public RemoteTier remoteTier() {
        return remote;
    }

    // ---- sessions ------------------------------------------------------------------------------

    /** A new, empty session of {@code tenant}; returns its record. */
    public SessionRecord create(String tenant) {
        Objects.requireNonNull(tenant, "tenant");
        long now = clock.millis();
        SessionRecord r = SessionRecord.empty(UUID.randomUUID().toString(), tenant, now);
        write(r, null, List.of());
        return r;
    }

    /** The session's record. */
    public SessionRecord get(String tenant, String id) {
        return load(tenant, id);
    }

    /** Ids of {@code tenant}'s sessions (a scan of all records: for tests and small deployments). */
    public List<String> list(String tenant) {
        List<String> ids = new ArrayList<>();
        try (SessionScan it = warm.scanSessions(null)) {
            while (it.hasNext()) {
                byte[] id = it.next();
                warm.getSession(id).ifPresent(v -> {
                    SessionRecord r = SessionRecord.decode(v);
                    if (r.tenant().equals(tenant)) {
                        ids.add(r.id());
                    }
                });
            }
        }
        return ids;
    }

    /** A running turn: its generation (cancel it to end the reply early) and the turn's result. */
    public record Turn(Generation generation, CompletableFuture<TurnResult> result) {}

    /**
     * Runs a turn: appends {@code newTokens} (and {@code newMessages}, for the record) to the
     * session, resumes its KV, prefills what is not cached and generates up to {@code maxTokens}.
     * The future completes after the new record (and, write-through, the new chunks) are stored.
     *
     * @throws SessionBusyException     when a turn of this session is already running
     * @throws UnknownSessionException  when the tenant has no such session
     */
    public CompletableFuture<TurnResult> turn(String tenant, String id, int[] newTokens, List<SessionRecord.Message> newMessages,
                                              SamplingParams params, int maxTokens, boolean ignoreEndOfGeneration,
                                              GenerationListener listener) {
        return begin(tenant, id, newTokens, newMessages, result -> List.of(), params, maxTokens, ignoreEndOfGeneration, listener)
                .result();
    }

    /**
     * As {@link #turn}, handing back the generation as well, and recording the reply: {@code reply}
     * maps the generation's result to the messages stored after {@code newMessages} (the assistant's
     * text is known only then). A cancelled generation still ends the turn normally: the record keeps
     * the tokens generated until then.
     */
    public Turn begin(String tenant, String id, int[] newTokens, List<SessionRecord.Message> newMessages,
                      Function<GenerationResult, List<SessionRecord.Message>> reply, SamplingParams params, int maxTokens,
                      boolean ignoreEndOfGeneration, GenerationListener listener) {
        return begin(tenant, id, -1, r -> concat(r.tokens(), newTokens), false, SessionRecord::droppedMessages, -1, newMessages, reply,
                params, maxTokens, ignoreEndOfGeneration, listener);
    }

    /**
     * As {@link #begin}, for a conversation that dropped its oldest turns to fit the context
     * length: the session's tokens become {@code keptTokens} (the rendering of the messages still
     * held followed by the new ones), and the {@code droppedMessages} messages after the leading
     * system messages are no longer in the tokens (the record keeps every message). The KV of the
     * longest prefix of whole chunks {@code keptTokens} shares with what is stored is reused, the
     * rest is computed.
     *
     * @param version the record version {@code keptTokens} was rendered from
     * @throws SessionBusyException when the session is in a turn, or has changed since {@code version}
     */
    public Turn beginTruncated(String tenant, String id, long version, int[] keptTokens, int droppedMessages,
                               List<SessionRecord.Message> newMessages, Function<GenerationResult, List<SessionRecord.Message>> reply,
                               SamplingParams params, int maxTokens, boolean ignoreEndOfGeneration, GenerationListener listener) {
        int[] kept = keptTokens.clone();
        return begin(tenant, id, version, r -> kept, true, r -> droppedMessages, -1, newMessages, reply, params, maxTokens,
                ignoreEndOfGeneration, listener);
    }

    /**
     * As {@link #begin}, with context shifts: when the session's KV would pass the context length
     * (at the start of the turn, or while generating), the chunks after the first
     * {@code sinkChunks} (the attention sinks) lose the oldest of them (half of the rest, at
     * least what is needed) and the later ones move back, re-rotated, without a recompute
     * ({@link InferenceEngine#shift}). The record keeps every token and message; its
     * {@link SessionRecord#shiftedTokens} say which tokens the KV no longer holds, and moved chunks
     * are stored under keys that say they moved ({@link ChunkKey#shifted}). A session shifted
     * before keeps the sinks it was shifted with.
     */
    public Turn beginShifting(String tenant, String id, int[] newTokens, List<SessionRecord.Message> newMessages,
                              Function<GenerationResult, List<SessionRecord.Message>> reply, SamplingParams params, int maxTokens,
                              boolean ignoreEndOfGeneration, GenerationListener listener, int sinkChunks) {
        if (sinkChunks < 0 || (long) (sinkChunks + 1) * chunkTokens > engine.contextLength()) {
            throw new IllegalArgumentException(sinkChunks + " sink chunks of " + chunkTokens + " tokens leave no chunk to shift in a context of "
                    + engine.contextLength());
        }
        return begin(tenant, id, -1, r -> concat(r.tokens(), newTokens), false, SessionRecord::droppedMessages, sinkChunks, newMessages,
                reply, params, maxTokens, ignoreEndOfGeneration, listener);
    }

    /** A context shift of a turn's KV, replayed on its chunk keys when the turn is stored. */
    private record ShiftEvent(int lengthBefore, int keepChunks, int dropChunks, boolean rotated) {}

    /** What a turn's KV stands for as it goes: the sinks, the tokens shifted out before it, and the shifts it made. */
    private static final class KvPlan {
        final int sink;
        final int shiftedBefore;
        /** Keys of the chunks the turn resumed whose keys no chain of tokens gives (see {@link #resume}). */
        List<ChunkKey> known;
        final List<ShiftEvent> shifts = new java.util.concurrent.CopyOnWriteArrayList<>();

        KvPlan(int sink, int shiftedBefore, List<ChunkKey> known) {
            this.sink = sink;
            this.shiftedBefore = shiftedBefore;
            this.known = known;
        }

        int shiftedTokens(int chunkTokens) {
            int n = shiftedBefore;
            for (ShiftEvent e : shifts) {
                n += e.dropChunks * chunkTokens;
            }
            return n;
        }
    }

    private Turn begin(String tenant, String id, long version, Function<SessionRecord, int[]> tokensOf, boolean rewritten,
                       java.util.function.ToIntFunction<SessionRecord> droppedOf, int sinkChunks, List<SessionRecord.Message> newMessages,
                       Function<GenerationResult, List<SessionRecord.Message>> reply, SamplingParams params, int maxTokens,
                       boolean ignoreEndOfGeneration, GenerationListener listener) {
        Objects.requireNonNull(reply, "reply");
        claim(id);
        try {
            SessionRecord r = load(tenant, id);
            if (version >= 0 && r.version() != version) {
                throw new SessionBusyException(id);
            }
            int[] history = tokensOf.apply(r);
            int dropped = droppedOf.applyAsInt(r);
            if (history.length == 0) {
                throw new IllegalArgumentException("a turn needs at least one token");
            }
            // A rewritten conversation (truncate) is a new token list: nothing of it was shifted.
            boolean wasShifted = !rewritten && r.shiftedTokens() > 0;
            KvPlan plan = new KvPlan(wasShifted ? r.sinkTokens() : Math.max(0, sinkChunks) * chunkTokens,
                    wasShifted ? r.shiftedTokens() : 0, wasShifted ? r.chunkKeys() : List.of());
            int[] kv = SessionRecord.kvView(history, plan.sink, plan.shiftedBefore);
            int[] kvBeforeShift = kv;
            Resumed resumed = resume(tenant, r, kv, wasShifted ? r.kvTokens() : r.tokens(), plan.known, sinkChunks < 0);
            // Chunks after the first miss are computed again: chained keys name them, not the record's.
            plan.known = plan.known.subList(0, Math.min(plan.known.size(), resumed.hotChunks + resumed.warmChunks));
            Generation g;
            try {
                if (sinkChunks >= 0 && kv.length > shiftAt()) {
                    kv = shiftAtStart(resumed.cache, kv, plan);
                }
                ContextShift hook = sinkChunks < 0 ? null : new ContextShift() {
                    @Override
                    public int shift(KvCache cache) {
                        int before = cache.length();
                        int keep = plan.sink / chunkTokens;
                        int drop = Math.max(1, (before / chunkTokens - keep) / 2);
                        plan.shifts.add(new ShiftEvent(before, keep, drop, true));
                        return before - engine.shift(cache, keep, drop);
                    }

                    @Override
                    public int shiftAt(int contextLength) {
                        return SessionStore.this.shiftAt();
                    }
                };
                g = scheduler.submit(resumed.cache, kv, params, maxTokens, ignoreEndOfGeneration, listener, hook);
            } catch (RuntimeException e) {
                resumed.cache.close();
                throw e;
            }
            int fed = kv.length;
            CompletableFuture<TurnResult> done = g.result()
                    .thenApplyAsync(result -> finishTurn(tenant, r, history, kvBeforeShift, fed, plan, dropped,
                            messagesOf(newMessages, reply, result), resumed, result), persister)
                    .whenComplete((x, error) -> busy.remove(id));
            return new Turn(g, done);
        } catch (RuntimeException e) {
            busy.remove(id);
            throw e;
        }
    }

    /**
     * Where a shifting session's KV shifts: the last chunk boundary within the context length.
     * Shifting only whole chunks means no moved chunk mixes positions computed before a shift with
     * positions computed after it, so a moved chunk's key ({@link ChunkKey#shifted}) and the chain
     * keys after it name their content exactly.
     */
    private int shiftAt() {
        return engine.contextLength() / chunkTokens * chunkTokens;
    }

    /**
     * Makes {@code kv} (the tokens a turn's KV must hold) fit within {@link #shiftAt}: drops whole
     * chunks after the sinks, at least what is needed and half of the rest. The resumed cache is
     * cut to whole chunks (a partial tail is computed again) and shifted when it holds the chunks
     * to drop, else cut to its sinks (the rest is then computed again). Returns the tokens kept.
     */
    private int[] shiftAtStart(KvCache cache, int[] kv, KvPlan plan) {
        int limit = shiftAt();
        int keep = plan.sink / chunkTokens;
        int needed = (kv.length - limit + chunkTokens - 1) / chunkTokens;
        int drop = Math.max(needed, (limit / chunkTokens - keep) / 2);
        if ((long) (keep + drop) * chunkTokens >= kv.length) {
            throw new io.kvstash.engine.ContextOverflowException("the new tokens of this turn do not fit the context length "
                    + engine.contextLength() + " after the " + plan.sink + " sink tokens");
        }
        int whole = cache.length() / chunkTokens * chunkTokens;
        if (whole >= (keep + drop) * chunkTokens) {
            if (whole < cache.length()) {
                cache.truncate(whole);
            }
            plan.shifts.add(new ShiftEvent(whole, keep, drop, true));
            engine.shift(cache, keep, drop);
        } else {
            plan.shifts.add(new ShiftEvent(cache.length(), keep, drop, false));
            if (cache.length() > keep * chunkTokens) {
                cache.truncate(keep * chunkTokens);
            }
        }
        return withoutChunks(kv, keep, drop);
    }

    private static List<SessionRecord.Message> messagesOf(List<SessionRecord.Message> newMessages,
                                                         Function<GenerationResult, List<SessionRecord.Message>> reply,
                                                         GenerationResult result) {
        List<SessionRecord.Message> all = new ArrayList<>();
        if (newMessages != null) {
            all.addAll(newMessages);
        }
        if (result.reason() != StopReason.ERROR) {
            all.addAll(reply.apply(result));
        }
        return all;
    }

    /** A new session of the same tenant with the same conversation; it shares every full chunk (copy on write: chunks never change). */
    public SessionRecord fork(String tenant, String id) {
        SessionRecord r = load(tenant, id);
        long now = clock.millis();
        SessionRecord copy = new SessionRecord(UUID.randomUUID().toString(), tenant, now, now, 0, r.tokens(), r.kvLength(),
                r.chunkKeys(), r.tail(), r.messages(), r.droppedMessages(), r.sinkTokens(), r.shiftedTokens());
        write(copy, null, List.of());
        return copy;
    }

    /**
     * A new session of {@code tenant} (with a new id) holding a conversation exported elsewhere
     * (another replica, or before a move): its tokens, messages and, for an exact resume, how many
     * positions had KV and the F32 tail of the last, partly filled chunk. The chunk keys are derived
     * again from the tokens under {@code tenant}, never taken from the export, so an import reads
     * only chunks the importing tenant could have computed itself; chunks no tier has are recomputed
     * by the next turn (and then the tail is ignored: it only counts when every full chunk before it
     * is found).
     *
     * @throws InvalidImportException when the parts do not fit together or with this model
     */
    public SessionRecord importSession(String tenant, int[] tokens, int kvLength, byte[] tail, List<SessionRecord.Message> messages) {
        return importSession(tenant, tokens, kvLength, tail, messages, 0, 0, 0);
    }

    /**
     * As {@link #importSession(String, int[], int, byte[], List)}, for a session that dropped
     * {@code droppedMessages} turns (truncate) or shifted {@code shiftedTokens} tokens out of its
     * KV after {@code sinkTokens} (shift). A shifted session's moved chunks have keys no tokens
     * chain to, so its KV is not taken over: the next turn computes the tokens it holds again.
     */
    public SessionRecord importSession(String tenant, int[] tokens, int kvLength, byte[] tail, List<SessionRecord.Message> messages,
                                       int droppedMessages, int sinkTokens, int shiftedTokens) {
        Objects.requireNonNull(tenant, "tenant");
        Objects.requireNonNull(tokens, "tokens");
        List<SessionRecord.Message> msgs = messages == null ? List.of() : messages;
        if (droppedMessages < 0 || droppedMessages > msgs.size()) {
            throw new InvalidImportException("dropped_messages",
                    "dropped_messages " + droppedMessages + " outside [0, " + msgs.size() + "] (the message count)");
        }
        if (sinkTokens < 0 || shiftedTokens < 0 || sinkTokens % chunkTokens != 0 || shiftedTokens % chunkTokens != 0
                || (long) sinkTokens + shiftedTokens > tokens.length || (shiftedTokens == 0) != (sinkTokens == 0)) {
            throw new InvalidImportException("shifted_tokens", "sink_tokens " + sinkTokens + " and shifted_tokens " + shiftedTokens
                    + " must both be 0, or whole chunks of " + chunkTokens + " within the " + tokens.length + " tokens");
        }
        if (shiftedTokens > 0) {
            kvLength = 0;
            tail = null;
        }
        int vocabulary = engine.tokenizer().vocabularySize();
        for (int i = 0; i < tokens.length; i++) {
            if (tokens[i] < 0 || tokens[i] >= vocabulary) {
                throw new InvalidImportException("tokens",
                        "token " + i + " is " + tokens[i] + ", outside this model's vocabulary [0, " + vocabulary + ")");
            }
        }
        if (kvLength < 0 || kvLength > tokens.length) {
            throw new InvalidImportException("kv_length",
                    "kv_length " + kvLength + " outside [0, " + tokens.length + "] (the token count)");
        }
        byte[] t = tail == null ? new byte[0] : tail;
        int filled = kvLength % chunkTokens;
        int want = filled == 0 ? 0 : TailCodec.bytes(hot.geometry(), filled);
        if (t.length != want) {
            throw new InvalidImportException("tail", "the tail has " + t.length + " bytes; " + filled
                    + " positions past the last full chunk of " + chunkTokens + " need " + want);
        }
        if (!TailCodec.finite(t)) {
            throw new InvalidImportException("tail", "the tail holds a value that is not a finite number");
        }
        ChunkKey[] keys = ChunkKey.chain(tenant, model, hot.geometry().format(), chunkTokens, tokens, kvLength / chunkTokens);
        long now = clock.millis();
        SessionRecord r = new SessionRecord(UUID.randomUUID().toString(), tenant, now, now, 0, tokens, kvLength, Arrays.asList(keys),
                t, msgs, droppedMessages, sinkTokens, shiftedTokens);
        write(r, null, List.of());
        return r;
    }

    /** The chunk size, KV format and model dimensions of the sessions here (what an export must match). */
    public KvGeometry geometry() {
        return hot.geometry();
    }

    /** Writes the session's hot chunks the warm tier lacks, then drops them from the hot tier (chunks in use stay). */
    public Residency offload(String tenant, String id) {
        SessionRecord r = load(tenant, id);
        for (ChunkKey k : r.chunkKeys()) {
            KvChunk c = hot.acquire(k);
            if (c == null) {
                continue;
            }
            try {
                if (!isStored(k)) {
                    warm.putChunks(List.of(new NewChunk(k.bytes(), header, bytesOf(c))));
                    synchronized (this) {
                        stored.add(k);
                    }
                }
                hot.markPersisted(k);
            } finally {
                hot.release(c);
            }
            hot.evict(k);
        }
        return residency(r);
    }

    /**
     * Prefetches the session's chunks from the warm tier into the hot tier (unpinned, most recently used).
     * With parking, a chunk the next turn will park whose summary is kept ({@link ParkedSummaries}) is
     * left in the warm tier: that turn parks it from the summary and would only drop it from the hot tier.
     */
    public Residency restore(String tenant, String id) {
        SessionRecord r = load(tenant, id);
        List<ChunkKey> missing = new ArrayList<>();
        List<ChunkKey> keys = r.chunkKeys();
        int parkEnd = parking.parkedEnd(keys.size());
        for (int i = 0; i < keys.size(); i++) {
            ChunkKey k = keys.get(i);
            boolean parkedNext = i >= 1 && i < parkEnd && keptSummary(k) != null;
            if (!parkedNext && !hot.contains(k)) {
                missing.add(k);
            }
        }
        if (!missing.isEmpty()) {
            List<Optional<byte[]>> got = warm.getChunks(missing.stream().map(ChunkKey::bytes).toList(), header);
            for (int i = 0; i < missing.size(); i++) {
                if (got.get(i).isPresent()) {
                    KvChunk c = fromBytes(missing.get(i), got.get(i).get(), true, true);
                    if (c != null) {
                        hot.release(c);
                    }
                }
            }
        }
        return residency(r);
    }

    /** Deletes the session; its chunks go when no other record lists them and the grace period has passed. */
    public void delete(String tenant, String id) {
        claim(id);
        try {
            SessionRecord r = load(tenant, id);
            warm.deleteSession(idBytes(id), List.of());
            synchronized (this) {
                long now = clock.millis();
                for (ChunkKey k : r.chunkKeys()) {
                    unref(k, now);
                }
                lastUsed.remove(id);
                Integer size = recordBytes.remove(id);
                if (size != null) {
                    recordBytesTotal -= size;
                }
            }
        } finally {
            busy.remove(id);
        }
    }

    public Residency residency(String tenant, String id) {
        return residency(load(tenant, id));
    }

    /** Where the chunks of {@code r} (a record read from this store) are, without reading it again. */
    public Residency residency(SessionRecord r) {
        int h = 0;
        int w = 0;
        int m = 0;
        for (ChunkKey k : r.chunkKeys()) {
            if (hot.contains(k)) {
                h++;
            } else if (isStored(k)) {
                w++;
            } else {
                m++;
            }
        }
        int parked = parking.parked(r.chunkKeys().size());
        long summaries = parked == 0 ? 0 : parked * KvChunk.summaryBytes(hot.geometry(), engine.sparse().summaryTokens(chunkTokens));
        return new Residency(h, w, m, h * chunkBytes, (long) (h + w) * chunkBytes, parked, summaries,
                (long) Math.min(parked, parking.transientChunks()) * chunkBytes);
    }

    /** Deletes stored chunks no record has listed for the grace period; returns how many. */
    public int collectGarbage() {
        long now = clock.millis();
        List<ChunkKey> doomed = new ArrayList<>();
        synchronized (this) {
            for (Map.Entry<ChunkKey, Long> e : orphanSince.entrySet()) {
                if (now - e.getValue() >= config.orphanGrace().toMillis() && refs.getOrDefault(e.getKey(), 0) == 0) {
                    doomed.add(e.getKey());
                }
            }
        }
        deleteChunks(doomed);
        return doomed.size();
    }

    /** Bytes the warm tier holds as this layer counts them: stored chunks and records. */
    public synchronized long warmBytes() {
        return stored.size() * (chunkBytes + 36) + recordBytesTotal;
    }

    public synchronized int storedChunks() {
        return stored.size();
    }

    public synchronized int referencedChunks() {
        return refs.size();
    }

    /** Chunks that turns resumed from the warm tier (since this store was opened). */
    public long warmHits() {
        return warmChunkHits.sum();
    }

    /**
     * Parked chunks whose key summary a turn found kept from an earlier turn, so it read no body and
     * summarised nothing for them (since this store was opened; 0 without parking).
     */
    public long parkedSummaryHits() {
        return summaryHits.sum();
    }

    /** Whether the summary of {@code key}'s chunk is kept for the current sparse settings (false without parking). */
    boolean summaryKept(ChunkKey key) {
        return keptSummary(key) != null;
    }

    /**
     * The parked chunk whose summary is kept for {@code key}, in the layout of the current sparse settings,
     * when the warm tier holds its body; else null (and always without parking).
     */
    private KvChunk keptSummary(ChunkKey key) {
        return summaries != null && isStored(key) ? summaries.get(key, engine.sparse().summaryTokens(chunkTokens)) : null;
    }

    /** Heap bytes of the parked chunks' key summaries kept across turns (0 without parking). */
    public long parkedSummaryBytes() {
        return summaries == null ? 0 : summaries.bytes();
    }

    /** Chunks that turns looked for in the warm tier and did not get there (since this store was opened). */
    public long warmMisses() {
        return warmChunkMisses.sum();
    }

    // ---- a turn ------------------------------------------------------------------------------

    /** @param mayPark whether the turn parks chunks (then also those it computes, when it ends) */
    record Resumed(KvCache cache, int hotChunks, int warmChunks, int remoteChunks, int tailTokens, boolean mayPark) {
        int chunks() {
            return hotChunks + warmChunks + remoteChunks;
        }
    }

    /**
     * The longest cached prefix of the KV of {@code history} (the tokens the KV is to hold): hot
     * chunks, then warm ones, then remote ones, then the record's tail. {@code known}: keys of the first chunks when
     * they cannot be chained from the tokens (moved by a context shift); {@code recordKv}: the
     * tokens the record's KV holds (its tail is used only while {@code history} starts with them).
     */
    Resumed resume(String tenant, SessionRecord r, int[] history) {
        return resume(tenant, r, history, r.kvTokens(), r.shiftedTokens() > 0 ? r.chunkKeys() : List.of(), true);
    }

    /**
     * @param mayPark whether the turn may park chunks ({@link Parking}; not when it may shift its KV, which
     *                moves chunks: a parked chunk cannot be moved)
     */
    Resumed resume(String tenant, SessionRecord r, int[] history, int[] recordKv, List<ChunkKey> known, boolean mayPark) {
        KvCache cache = engine.newSequence();
        try {
            int full = (history.length - 1) / chunkTokens; // leave at least one token to feed
            ChunkKey[] keys = ChunkKey.extend(known, tenant, model, hot.geometry().format(), chunkTokens, history, full);
            // Chunks [1, parkEnd) are parked: taken from the hot tier and let go there, or read once from the warm tier to be summarised.
            int parkEnd = mayPark ? parking.parkedEnd(full) : 0;
            int i = 0;
            int hotHits = 0;
            int warmHits = 0;
            int summaryTokens = parkEnd > 1 ? engine.sparse().summaryTokens(chunkTokens) : 0;
            for (; i < full; i++) {
                boolean park = i >= 1 && i < parkEnd;
                KvChunk kept = park ? keptSummary(keys[i]) : null;
                if (kept != null) {
                    // Its summary outlived its last turn: park it again without reading the body.
                    ensureTransient(cache, parkEnd - 1);
                    cache.appendParked(kept);
                    warmHits++;
                    warmChunkHits.increment();
                    summaryHits.increment();
                    continue;
                }
                KvChunk c = hot.acquire(keys[i]);
                if (c != null) {
                    cache.appendFull(c);
                    hotHits++;
                    if (park) {
                        parkHot(cache, i, keys[i], parkEnd - 1, summaryTokens);
                    }
                } else if (park ? parkFromWarm(cache, i, keys[i], parkEnd - 1, summaryTokens) : i == 0 && parkEnd > 1 && sinkFromWarm(cache, keys[0])) {
                    warmHits++;
                    warmChunkHits.increment();
                } else {
                    break; // a miss, or past the parked chunks: the rest is read in one batch below
                }
            }
            boolean headLookedUp = true;
            if (i < full) {
                List<ChunkKey> want = Arrays.asList(keys).subList(i, full);
                List<Optional<byte[]>> got = warm.getChunks(want.stream().map(ChunkKey::bytes).toList(), header);
                // The loop above looked keys[i] up in the hot tier (a counted miss) before it stopped.
                int found = appendFound(cache, want, got, true, true);
                // keys[i + found] was looked up too if found is 0, or if its bytes were read but did not fit.
                headLookedUp = found == 0 || (found < want.size() && got.get(found).isPresent());
                i += found;
                warmHits += found;
                warmChunkHits.add(found);
                warmChunkMisses.add(want.size() - found);
            }
            int remoteHits = 0;
            if (i < full && remote != null) {
                // Not persisted locally: the turn's write (write-through) or an eviction (write-back) stores them in the warm tier.
                List<ChunkKey> want = Arrays.asList(keys).subList(i, full);
                List<Optional<byte[]>> got = remote.get(want, header);
                remoteHits = appendFound(cache, want, got, false, headLookedUp);
                i += remoteHits;
            }
            int tailTokens = 0;
            int filled = r.kvLength() % chunkTokens;
            // The tail holds the record's tokens: usable only while the history still starts with them.
            if (i == r.kvLength() / chunkTokens && filled > 0 && r.kvLength() < history.length
                    && r.kvLength() <= recordKv.length && Arrays.equals(history, 0, r.kvLength(), recordKv, 0, r.kvLength())
                    && r.tail().length == TailCodec.bytes(hot.geometry(), filled)) {
                KvChunk tail = hot.allocate();
                try {
                    TailCodec.restore(r.tail(), filled, tail);
                } catch (RuntimeException e) {
                    hot.release(tail);
                    throw e;
                }
                cache.appendTail(tail, filled);
                tailTokens = filled;
            }
            return new Resumed(cache, hotHits, warmHits, remoteHits, tailTokens, mayPark && parking.enabled());
        } catch (RuntimeException e) {
            cache.close();
            throw e;
        }
    }

    /** Gives {@code cache} its transient slots for {@code parked} parked chunks, unless it has them. */
    private void ensureTransient(KvCache cache, int parked) {
        if (cache.transientChunks() == null) {
            cache.useTransientChunks(new io.kvstash.engine.kv.TransientChunks(hot.geometry(),
                    Math.max(1, Math.min(parking.transientChunks(), parked)), parking.prefetch()));
        }
    }

    /**
     * Parks chunk {@code index} of {@code cache}, just taken from the hot tier: written to the warm tier
     * first if it is not there, summarised unless it is already (a chunk the hot tier keeps keeps its
     * summary), parked, then dropped from the hot tier unless another sequence holds it.
     */
    private void parkHot(KvCache cache, int index, ChunkKey key, int parked, int summaryTokens) {
        ensureTransient(cache, parked);
        KvChunk c = cache.chunk(index);
        if (!isStored(key)) {
            warm.putChunks(List.of(new NewChunk(key.bytes(), header, bytesOf(c))));
            markStored(key);
        }
        hot.markPersisted(key);
        cache.park(index, parkedFetcher, key, summaryTokens);
        summaries.put(key, cache.chunk(index));
        hot.evict(key);
    }

    /**
     * Appends chunk {@code index} from the warm tier as a parked chunk: its body is read once (one
     * RocksDB read through a reused buffer, into one hot-tier slab that is never registered and is freed
     * as soon as the summary is computed), so the hot tier never lists it. Returns false when the warm tier
     * does not have it (or it fails its checks).
     */
    private boolean parkFromWarm(KvCache cache, int index, ChunkKey key, int parked, int summaryTokens) {
        ensureTransient(cache, parked);
        KvChunk body = hot.allocateSealed();
        try {
            parkedFetcher.fetch(new Object[] {key}, new MemorySegment[] {body.data()}, 0, 1);
            cache.appendFull(body); // the cache releases it from now on
        } catch (io.kvstash.engine.kv.ChunkUnavailableException e) {
            hot.release(body); // missing or damaged (the fetcher called lost): the turn computes it again and writes it anew
            return false;
        } catch (RuntimeException e) {
            hot.release(body);
            throw e;
        }
        markStored(key);
        cache.park(index, parkedFetcher, key, summaryTokens);
        summaries.put(key, cache.chunk(index));
        return true;
    }

    /**
     * A parked chunk's body is gone from the warm tier or damaged there (found by a read): the store
     * no longer counts it as stored and forgets its kept summary, so the next turn that needs it
     * computes it again and writes it anew instead of parking it from the summary.
     */
    private void lost(ChunkKey key) {
        synchronized (this) {
            stored.remove(key);
        }
        summaries.remove(key);
    }

    /** Appends the sink chunk (chunk 0, before the parked ones) from the warm tier, registered in the hot tier; false when missing. */
    private boolean sinkFromWarm(KvCache cache, ChunkKey key) {
        List<Optional<byte[]>> got = warm.getChunks(List.of(key.bytes()), header);
        return appendFound(cache, List.of(key), got, true, true) == 1; // the resume looked the sink up in the hot tier first
    }

    /** Records that the warm tier holds {@code key} (written or read outside a record's batch). */
    private synchronized void markStored(ChunkKey key) {
        if (stored.add(key) && refs.getOrDefault(key, 0) == 0) {
            orphanSince.putIfAbsent(key, clock.millis());
        }
    }

    /**
     * Appends the leading run of {@code want} that a tier found ({@code got}, in the same order) to
     * {@code cache}, stopping at the first chunk missing or not fitting; returns how many.
     */
    private int appendFound(KvCache cache, List<ChunkKey> want, List<Optional<byte[]>> got, boolean persisted, boolean firstLookedUp) {
        int n = 0;
        for (; n < want.size() && got.get(n).isPresent(); n++) {
            KvChunk c = fromBytes(want.get(n), got.get(n).get(), persisted, !(n == 0 && firstLookedUp));
            if (c == null) {
                break;
            }
            cache.appendFull(c);
        }
        return n;
    }

    /**
     * A chunk read from the warm or remote tier, registered in the hot tier and pinned; null if its
     * bytes do not fit. It looks in the hot tier first (another sequence may have registered the
     * chunk meanwhile); {@code countMiss} false when the caller's own look at the key counted the miss.
     */
    private KvChunk fromBytes(ChunkKey key, byte[] payload, boolean persisted, boolean countMiss) {
        KvChunk existing = hot.acquire(key, countMiss);
        if (existing != null) {
            return existing;
        }
        if (payload.length != chunkBytes) {
            return null;
        }
        KvChunk c = hot.allocateSealed();
        MemorySegment.copy(payload, 0, c.data(), ValueLayout.JAVA_BYTE, 0, payload.length);
        KvChunk kept = hot.register(key, c, persisted);
        if (kept != c) {
            hot.release(c);
        }
        return kept;
    }

    private TurnResult finishTurn(String tenant, SessionRecord r, int[] history, int[] kvBeforeShift, int fed, KvPlan plan, int droppedMessages,
                                  List<SessionRecord.Message> newMessages, Resumed resumed, GenerationResult result) {
        KvCache cache = resumed.cache;
        List<ChunkKey> parkAfterTurn = new ArrayList<>();
        try {
            if (result.reason() == StopReason.ERROR) {
                // The cache may hold half a step: keep the record as it was.
                throw new CompletionException(result.error() != null ? result.error() : new IllegalStateException("generation failed"));
            }
            int[] tokens = concat(history, result.tokens());
            int kv = cache.length();
            int full = kv / chunkTokens;
            ChunkKey[] keys = chunkKeys(tenant, plan, concat(kvBeforeShift, result.tokens()), full);
            List<NewChunk> fresh = new ArrayList<>();
            int listed = 0;
            for (int c = 0; c < full; c++) {
                KvChunk chunk = cache.chunk(c);
                if (chunk.parked()) {
                    // In the warm tier under this key (parked only once there), and never in the hot tier again.
                    if (listed == c) {
                        listed++;
                    }
                    continue;
                }
                KvChunk kept = hot.register(keys[c], chunk, false);
                if (kept != chunk) {
                    cache.replaceFull(c, kept);
                }
                byte[] bytes = null;
                if (remote != null && c >= resumed.chunks()) {
                    // Computed by this turn: share it (chunks that came from a tier are there already, or were elsewhere).
                    bytes = bytesOf(kept);
                    remote.put(keys[c], header, bytes);
                }
                if (isStored(keys[c])) {
                    hot.markPersisted(keys[c]);
                    if (listed == c) {
                        listed++;
                    }
                } else if (config.writeThrough()) {
                    fresh.add(new NewChunk(keys[c].bytes(), header, bytes != null ? bytes : bytesOf(kept)));
                    listed++;
                }
            }
            byte[] tail = null;
            int kvLength = listed * chunkTokens;
            if (listed == full && kv % chunkTokens != 0) {
                tail = TailCodec.export(cache.chunk(full), kv % chunkTokens);
                kvLength = kv;
            }
            long now = clock.millis();
            List<SessionRecord.Message> messages = new ArrayList<>(r.messages());
            if (newMessages != null) {
                messages.addAll(newMessages);
            }
            int shifted = plan.shiftedTokens(chunkTokens);
            SessionRecord next = new SessionRecord(r.id(), r.tenant(), r.createdMillis(), now, r.version() + 1, tokens, kvLength,
                    Arrays.asList(keys).subList(0, listed), tail, messages, droppedMessages, shifted > 0 ? plan.sink : 0, shifted);
            write(next, r, fresh);
            for (NewChunk c : fresh) {
                hot.markPersisted(ChunkKey.of(c.key()));
            }
            enforceBudget(r.id());
            int promptTokens = fed;
            int computed = Math.max(0, promptTokens - resumed.chunks() * chunkTokens - resumed.tailTokens);
            var slots = cache.transientChunks();
            Footprint footprint = new Footprint(cache.parkedChunks(), cache.bytes(), cache.summaryBytes(), slots == null ? 0 : slots.bytes());
            if (resumed.mayPark) {
                // The chunks the next turn parks leave the hot tier now: they are in the warm tier (listed by the record).
                for (int c = 1, end = Math.min(parking.parkedEnd(full), listed); c < end; c++) {
                    if (!cache.chunk(c).parked()) {
                        parkAfterTurn.add(keys[c]);
                    }
                }
            }
            return new TurnResult(next, result, promptTokens, resumed.hotChunks, resumed.warmChunks, resumed.remoteChunks,
                    resumed.tailTokens, computed, footprint);
        } finally {
            cache.close();
            // Unpinned now (unless another sequence holds them, which keeps them): out of the hot tier.
            for (ChunkKey k : parkAfterTurn) {
                if (isStored(k)) {
                    hot.evict(k);
                }
            }
        }
    }

    /**
     * The keys of the first {@code full} chunks of the turn's KV at its end: the keys the turn
     * resumed, chained on over the tokens the KV held, with each context shift of the turn
     * replayed (sinks keep their keys, dropped chunks go, moved chunks get {@link ChunkKey#shifted}
     * keys; a shift at the start that recomputed keeps only the sinks' keys).
     *
     * @param tokens the tokens the KV was to hold at the start of the turn (before any shift), then the generated ones
     */
    private ChunkKey[] chunkKeys(String tenant, KvPlan plan, int[] tokens, int full) {
        var format = hot.geometry().format();
        List<ChunkKey> keys = plan.known;
        int[] held = tokens;
        for (ShiftEvent e : plan.shifts) {
            ChunkKey[] before = ChunkKey.extend(keys, tenant, model, format, chunkTokens, held, e.lengthBefore / chunkTokens);
            List<ChunkKey> after = new ArrayList<>(Arrays.asList(before).subList(0, Math.min(e.keepChunks, before.length)));
            if (e.rotated) {
                for (int c = e.keepChunks + e.dropChunks; c < before.length; c++) {
                    after.add(ChunkKey.shifted(before[c], -e.dropChunks * chunkTokens));
                }
            }
            keys = after;
            held = withoutChunks(held, e.keepChunks, e.dropChunks);
        }
        return ChunkKey.extend(keys, tenant, model, format, chunkTokens, held, full);
    }

    /** {@code tokens} without the {@code drop} chunks' worth after the first {@code keep} chunks' worth. */
    private int[] withoutChunks(int[] tokens, int keep, int drop) {
        int[] out = new int[tokens.length - drop * chunkTokens];
        System.arraycopy(tokens, 0, out, 0, keep * chunkTokens);
        System.arraycopy(tokens, (keep + drop) * chunkTokens, out, keep * chunkTokens, out.length - keep * chunkTokens);
        return out;
    }

    // ---- the warm tier's bookkeeping -------------------------------------------------------------

    /** Writes {@code next} (replacing {@code previous}, if any) with {@code fresh} chunks in one batch, then updates the counts. */
    private void write(SessionRecord next, SessionRecord previous, Collection<NewChunk> fresh) {
        byte[] value = next.encode();
        warm.writeSession(idBytes(next.id()), value, fresh);
        synchronized (this) {
            long now = clock.millis();
            for (NewChunk c : fresh) {
                stored.add(ChunkKey.of(c.key()));
            }
            for (ChunkKey k : next.chunkKeys()) {
                refs.merge(k, 1, Integer::sum);
                orphanSince.remove(k);
            }
            if (previous != null) {
                for (ChunkKey k : previous.chunkKeys()) {
                    unref(k, now);
                }
            }
            lastUsed.put(next.id(), next.updatedMillis());
            Integer old = recordBytes.put(next.id(), value.length);
            recordBytesTotal += value.length - (old == null ? 0 : old);
        }
    }

    private void unref(ChunkKey k, long now) {
        Integer n = refs.get(k);
        if (n == null) {
            return;
        }
        if (n <= 1) {
            refs.remove(k);
            if (stored.contains(k)) {
                orphanSince.put(k, now);
            }
        } else {
            refs.put(k, n - 1);
        }
    }

    private synchronized boolean isStored(ChunkKey k) {
        return stored.contains(k);
    }

    private void deleteChunks(List<ChunkKey> keys) {
        if (keys.isEmpty()) {
            return;
        }
        warm.deleteChunks(keys.stream().map(ChunkKey::bytes).toList());
        synchronized (this) {
            for (ChunkKey k : keys) {
                stored.remove(k);
                orphanSince.remove(k);
            }
        }
        for (ChunkKey k : keys) {
            hot.evict(k);
            if (summaries != null) {
                summaries.remove(k);
            }
        }
    }

    /**
     * Over the disk budget: the least recently used sessions (never {@code current}, never one in a
     * turn) lose their chunk list; chunks no record lists any more are deleted at once.
     */
    private void enforceBudget(String current) {
        if (warmBytes() <= config.warmBudgetBytes()) {
            return;
        }
        List<String> byAge;
        synchronized (this) {
            byAge = new ArrayList<>(lastUsed.keySet());
            byAge.sort(Comparator.comparingLong(lastUsed::get));
        }
        for (String id : byAge) {
            if (warmBytes() <= config.warmBudgetBytes()) {
                break;
            }
            if (id.equals(current) || busy.putIfAbsent(id, Boolean.TRUE) != null) {
                continue;
            }
            try {
                Optional<byte[]> value = warm.getSession(idBytes(id));
                if (value.isEmpty()) {
                    continue;
                }
                SessionRecord r = SessionRecord.decode(value.get());
                if (r.chunkKeys().isEmpty() && r.tail().length == 0) {
                    continue;
                }
                SessionRecord dropped = new SessionRecord(r.id(), r.tenant(), r.createdMillis(), r.updatedMillis(), r.version() + 1,
                        r.tokens(), 0, List.of(), null, r.messages(), r.droppedMessages(), r.sinkTokens(), r.shiftedTokens());
                write(dropped, r, List.of());
                List<ChunkKey> doomed = new ArrayList<>();
                synchronized (this) {
                    for (ChunkKey k : r.chunkKeys()) {
                        if (!refs.containsKey(k) && stored.contains(k)) {
                            doomed.add(k);
                        }
                    }
                }
                deleteChunks(doomed);
            } finally {
                busy.remove(id);
            }
        }
    }

    // ---- helpers ------------------------------------------------------------------------------

    private void claim(String id) {
        if (busy.putIfAbsent(id, Boolean.TRUE) != null) {
            throw new SessionBusyException(id);
        }
    }

    private SessionRecord load(String tenant, String id) {
        Objects.requireNonNull(tenant, "tenant");
        Objects.requireNonNull(id, "id");
        Optional<byte[]> value = id.isEmpty() || id.length() > 200 ? Optional.empty() : warm.getSession(idBytes(id));
        if (value.isEmpty()) {
            throw new UnknownSessionException(id);
        }
        SessionRecord r = SessionRecord.decode(value.get());
        if (!r.tenant().equals(tenant)) {
            throw new UnknownSessionException(id);
        }
        return r;
    }

    private static byte[] idBytes(String id) {
        return id.getBytes(StandardCharsets.UTF_8);
    }

    private static byte[] bytesOf(KvChunk chunk) {
        return chunk.data().toArray(ValueLayout.JAVA_BYTE);
    }

    private static int[] concat(int[] a, int[] b) {
        int[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    /** Waits for turns being persisted; does not close the engine, the scheduler or the warm store. */
    @Override
    public void close() {
        persister.shutdown();
        try {
            if (!persister.awaitTermination(1, TimeUnit.MINUTES)) {
                persister.shutdownNow();
            }
        } catch (InterruptedException e) {
            persister.shutdownNow();
            Thread.currentThread().interrupt();
        }
        hot.writeBackTo(null);
    }
}
