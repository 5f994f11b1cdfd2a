package io.kvstash.cli;

import static io.kvstash.cli.BenchStats.hundredths;
import static io.kvstash.cli.BenchStats.median;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvstash.engine.EngineOptions;
import io.kvstash.engine.InferenceEngine;
import io.kvstash.engine.sampling.SamplingParams;
import io.kvstash.engine.scheduler.BatchScheduler;
import io.kvstash.engine.scheduler.GenerationListener;
import io.kvstash.offload.HotTier;
import io.kvstash.offload.RedisRemoteTier;
import io.kvstash.offload.SessionRecord;
import io.kvstash.offload.SessionStore;
import io.kvstash.persistence.WarmStore;
import io.kvstash.persistence.WarmStoreConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "bench-resume", mixinStandardHelpOptions = true,
        description = {"Time to first token of a resumed session: a session of --tokens tokens is stored, then each run forks it and"
                + " sends one more user message of --new-tokens tokens, timing from the call until the first generated token.",
                "ttft_hot_ms: the chunks are in the hot tier. ttft_warm_ms: the hot tier was emptied and RocksDB's block cache"
                        + " cleared first (the OS page cache is not dropped). ttft_recompute_ms: the same tokens in a session of"
                        + " another tenant, so that nothing is cached and the whole prompt is prefilled. Medians over --runs runs,"
                        + " after --warmup runs of each. Prints one JSON object.",
                "With --redis URL, also ttft_remote_ms: a second engine with its own (empty) hot and warm tier, sharing that Redis,"
                        + " imports the stored session (as POST /v1/sessions/import does) and runs the same turn, its chunks read from"
                        + " Redis; after each run its copy is deleted and its tiers emptied again."})
final class BenchResumeCommand implements Callable<Integer> {
    @Mixin
    EngineOptionsMixin engine;

    @Option(names = "--tokens", paramLabel = "N", description = "Tokens of the stored session (default 256).")
    int tokens = 256;

    @Option(names = "--new-tokens", paramLabel = "N", description = "Tokens of the new user message (default 8).")
    int newTokens = 8;

    @Option(names = "--runs", paramLabel = "N", description = "Measured runs of each kind (default 9).")
    int runs = 9;

    @Option(names = "--warmup", paramLabel = "N", description = "Warm-up runs of each kind (default 6).")
    int warmup = 6;

    @Option(names = "--sessions", paramLabel = "N", description = "Sessions of --tokens distinct random tokens stored before measuring"
            + " (default 0); the measured session is then the oldest of them. Reports the filling rate, resident memory and disk bytes per token.")
    int sessionsToFill = 0;

    @Option(names = "--hot-capacity", paramLabel = "MiB", description = "Hot tier capacity in MiB (default 1024).")
    long hotMiB = 1024;

    @Option(names = "--data", paramLabel = "DIR", description = "Directory for the warm tier (default: a temporary one, deleted afterwards).")
    Path data;

    @Option(names = "--redis", paramLabel = "URL", description = "A Redis to measure the shared remote tier with (redis://host:port);"
            + " its keys go under a prefix of their own.")
    String redis;

    @Option(names = "--existing", description = "Measure on the oldest session an earlier --sessions run left in --data instead of"
            + " storing new ones (reports how long opening the store and scanning its records took).")
    boolean existing;

    @Option(names = "--park", description = "Park the session's old chunks in the warm tier (needs --sparse): each turn reads chunks"
            + " 1..n-1-(--park-resident) from RocksDB (at most --park-slots of them) instead of the hot tier, as the service does with"
            + " kvstash.engine.sparse.park.enabled.")
    boolean park;

    @Option(names = "--park-resident", paramLabel = "N", description = "With --park: newest full chunks kept in the hot tier (default 8).")
    int parkResident = 8;

    @Option(names = "--park-slots", paramLabel = "N", description = "With --park: transient slots per sequence (default 64).")
    int parkSlots = 64;

    @Option(names = "--park-prefetch", description = "With --park: prefetch the next layer's chunks on a background thread.")
    boolean parkPrefetch;

    @Option(names = "--decode", paramLabel = "N", description = "Tokens each measured turn generates (default 1); above 1 also reports"
            + " ms per decoded token after the first.")
    int decode = 1;

    @Option(names = "--skip-recompute", description = "Do not measure the recompute (a long prompt prefilled in full every run).")
    boolean skipRecompute;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        if (tokens < 2 || newTokens < 1 || runs < 1 || warmup < 0 || decode < 1) {
            throw new IllegalArgumentException("--tokens must be at least 2, --new-tokens, --runs and --decode positive, --warmup not negative");
        }
        if (park && !engine.sparse) {
            throw new IllegalArgumentException("--park needs --sparse (parked chunks are chosen by their key summaries)");
        }
        EngineOptions options = engine.options();
        options = options.withContextLength(Math.max(options.contextLength(), tokens + newTokens + decode + 2));
        SessionStore.Config storeConfig = park
                ? SessionStore.Config.defaults().withParking(new SessionStore.Parking(true, parkResident, parkSlots, parkPrefetch))
                : SessionStore.Config.defaults();
        if (existing && (data == null || sessionsToFill > 0)) {
            throw new IllegalArgumentException("--existing needs --data (a directory an earlier --sessions run filled) and no --sessions");
        }
        Path dir = data != null ? data : Files.createTempDirectory("kvstash-bench-resume");
        long opening = System.nanoTime();
        Path replicaDir = redis != null ? Files.createTempDirectory("kvstash-bench-replica") : null;
        RedisRemoteTier.Config remoteConfig = redis == null ? null : new RedisRemoteTier.Config(redis, Duration.ofMinutes(10), 4096,
                Duration.ofSeconds(1), Duration.ofSeconds(5), "kvstash-bench-" + System.currentTimeMillis() + ":");
        try (RedisRemoteTier remote = remoteConfig == null ? null : new RedisRemoteTier(remoteConfig);
             InferenceEngine e = InferenceEngine.open(engine.model, options, g -> new HotTier(g, hotMiB << 20));
             BatchScheduler scheduler = new BatchScheduler(e);
             WarmStore warm = WarmStore.open(WarmStoreConfig.defaults(dir));
             SessionStore sessions = SessionStore.open(e, scheduler, warm, remote, storeConfig);
             Replica replica = remoteConfig == null ? null : new Replica(engine.model, options, hotMiB, replicaDir, remoteConfig)) {
            HotTier hot = (HotTier) e.kvStore();
            SplittableRandom random = new SplittableRandom(42);
            int vocab = e.config().vocabularySize();
            int[] prompt = randomTokens(random, tokens, vocab, e.tokenizer().bos());
            int[] message = randomTokens(random, newTokens, vocab, -1);
            ObjectNode json = new ObjectMapper().createObjectNode();
            SessionRecord base;
            if (existing) {
                json.put("open_seconds", hundredths((System.nanoTime() - opening) / 1e9));
                long listing = System.nanoTime();
                List<String> stored = sessions.list("bench");
                base = oldest(sessions, stored);
                json.put("list_seconds", hundredths((System.nanoTime() - listing) / 1e9));
                json.put("stored_sessions", stored.size());
            } else {
                base = sessions.create("bench");
                // The stored session: the prompt's KV plus one generated token (fed on the next turn).
                sessions.turn("bench", base.id(), prompt, List.of(), SamplingParams.greedy(), 1, true, null).get();
            }
            if (sessionsToFill > 0) {
                fill(sessions, random, vocab, e.tokenizer().bos(), json);
                warm.flush();
                json.put("fill_disk_bytes", warm.diskUsage().totalBytes());
                json.put("fill_disk_bytes_per_token", hundredths((double) warm.diskUsage().totalBytes() / ((long) (sessionsToFill + 1) * tokens)));
                json.put("fill_rss_mib", rssMiB());
                Runtime rt = Runtime.getRuntime();
                json.put("fill_heap_used_mib", (rt.totalMemory() - rt.freeMemory()) >> 20);
                json.put("hot_bytes_in_use", hot.bytesInUse());
            }
            base = sessions.get("bench", base.id());

            double[] hotMs = new double[runs];
            double[] warmMs = new double[runs];
            double[] recomputeMs = new double[runs];
            double[] remoteMs = new double[runs];
            int[] cached = new int[4];
            double[] hotPerToken = new double[runs];
            double[] warmPerToken = new double[runs];
            double[] perToken = new double[1];
            SessionStore.TurnResult[] last = new SessionStore.TurnResult[1];
            long hotBytesBetweenTurns = 0;
            if (remote != null && !remote.awaitWrites(Duration.ofSeconds(60))) {
                throw new IllegalStateException("the stored session's chunks were not written to Redis within 60 s: " + remote.stats());
            }
            long invocation = System.currentTimeMillis();
            for (int r = -warmup; r < runs; r++) {
                double h = ttft(sessions, "bench", sessions.fork("bench", base.id()).id(), message, cached, 0, decode, perToken, last);
                double hPerToken = perToken[0];
                hotBytesBetweenTurns = hot.bytesInUse();
                hot.evictAll();
                warm.clearBlockCache();
                double w = ttft(sessions, "bench", sessions.fork("bench", base.id()).id(), message, cached, 1, decode, perToken, last);
                double wPerToken = perToken[0];
                double c = Double.NaN;
                if (!skipRecompute) {
                    // A tenant of its own each run (and each invocation, as --data may be reused): nothing of it is cached.
                    String tenant = "bench-recompute-" + invocation + "-" + r;
                    SessionRecord fresh = sessions.create(tenant);
                    c = ttft(sessions, tenant, fresh.id(), concat(base.tokens(), message), cached, 2, 1, perToken, new SessionStore.TurnResult[1]);
                }
                if (replica != null) {
                    SessionRecord copy = replica.sessions.importSession("bench", base.tokens(), base.kvLength(), base.tail(), List.of());
                    double m = ttft(replica.sessions, "bench", copy.id(), message, cached, 3, 1, perToken, new SessionStore.TurnResult[1]);
                    replica.sessions.delete("bench", copy.id());
                    replica.sessions.collectGarbage();
                    ((HotTier) replica.engine.kvStore()).evictAll();
                    if (r >= 0) {
                        remoteMs[r] = m;
                    }
                }
                if (r >= 0) {
                    hotMs[r] = h;
                    warmMs[r] = w;
                    recomputeMs[r] = c;
                    hotPerToken[r] = hPerToken;
                    warmPerToken[r] = wPerToken;
                }
            }
            warm.flush();
            json.put("model", engine.model.getFileName().toString());
            json.put("kv_format", options.kvFormat().name());
            json.put("threads", options.threads());
            json.put("tokens", base.tokens().length);
            json.put("new_tokens", newTokens);
            json.put("runs", runs);
            json.put("ttft_hot_ms", hundredths(median(hotMs)));
            json.put("ttft_warm_ms", hundredths(median(warmMs)));
            if (!skipRecompute) {
                json.put("ttft_recompute_ms", hundredths(median(recomputeMs)));
                json.put("warm_speedup", hundredths(median(recomputeMs) / median(warmMs)));
            }
            if (decode > 1) {
                json.put("decode_tokens", decode);
                json.put("ms_per_token_hot", hundredths(median(hotPerToken)));
                json.put("ms_per_token_warm", hundredths(median(warmPerToken)));
            }
            json.put("sparse", engine.sparse);
            json.put("park", park);
            // What the last measured turn's sequence held at its end, and what the hot tier held between turns.
            SessionStore.Footprint f = last[0].footprint();
            json.put("turn_parked_chunks", f.parkedChunks());
            json.put("turn_hot_bytes", f.residentBytes());
            json.put("turn_summary_bytes", f.summaryBytes());
            json.put("turn_transient_bytes", f.transientBytes());
            json.put("turn_total_bytes", f.residentBytes() + f.summaryBytes() + f.transientBytes());
            json.put("hot_bytes_between_turns", hotBytesBetweenTurns);
            json.put("cached_tokens_hot", cached[0]);
            json.put("cached_tokens_warm", cached[1]);
            json.put("cached_tokens_recompute", cached[2]);
            if (replica != null) {
                json.put("ttft_remote_ms", hundredths(median(remoteMs)));
                json.put("cached_tokens_remote", cached[3]);
                json.put("remote_runs", Arrays.toString(Arrays.stream(remoteMs).map(BenchStats::hundredths).toArray()));
                json.put("remote_stats_replica", replica.remote.stats().toString());
            }
            json.put("stored_chunks", sessions.storedChunks());
            json.put("warm_disk_bytes", warm.diskUsage().totalBytes());
            json.put("hot_runs", Arrays.toString(Arrays.stream(hotMs).map(BenchStats::hundredths).toArray()));
            json.put("warm_runs", Arrays.toString(Arrays.stream(warmMs).map(BenchStats::hundredths).toArray()));
            json.put("recompute_runs", Arrays.toString(Arrays.stream(recomputeMs).map(BenchStats::hundredths).toArray()));
            spec.commandLine().getOut().println(json);
        } finally {
            if (data == null) {
                deleteTree(dir);
            }
            if (replicaDir != null) {
                deleteTree(replicaDir);
            }
        }
        return 0;
    }

    /** A second "replica" on the same Redis: its own engine, hot tier and warm tier; chunks it does not have are deleted at once. */
    private static final class Replica implements AutoCloseable {
        final RedisRemoteTier remote;
        final InferenceEngine engine;
        final BatchScheduler scheduler;
        final WarmStore warm;
        final SessionStore sessions;

        Replica(Path model, EngineOptions options, long hotMiB, Path dir, RedisRemoteTier.Config config) {
            remote = new RedisRemoteTier(config);
            engine = InferenceEngine.open(model, options, g -> new HotTier(g, hotMiB << 20));
            scheduler = new BatchScheduler(engine);
            warm = WarmStore.open(WarmStoreConfig.defaults(dir));
            sessions = SessionStore.open(engine, scheduler, warm, remote, new SessionStore.Config(Long.MAX_VALUE, true, Duration.ZERO));
        }

        @Override
        public void close() {
            sessions.close();
            scheduler.close();
            warm.close();
            remote.close();
            engine.close();
        }
    }

    /** The oldest session of tenant {@code bench} with the stored length of --tokens, or a clear error. */
    private SessionRecord oldest(SessionStore sessions, List<String> ids) {
        SessionRecord best = null;
        for (String id : ids) {
            SessionRecord r = sessions.get("bench", id);
            if (r.tokens().length == tokens + 1 && (best == null || r.createdMillis() < best.createdMillis())) {
                best = r;
            }
        }
        if (best == null) {
            throw new IllegalArgumentException("--existing: " + data + " holds no stored session of " + tokens + " tokens (fill it with --sessions)");
        }
        return best;
    }

    /** Stores --sessions sessions of distinct random tokens, 32 turns in flight at a time (batched by the scheduler). */
    private void fill(SessionStore sessions, SplittableRandom random, int vocab, int bos, ObjectNode json) throws Exception {
        long start = System.nanoTime();
        java.util.ArrayDeque<java.util.concurrent.CompletableFuture<SessionStore.TurnResult>> inFlight = new java.util.ArrayDeque<>();
        for (int i = 0; i < sessionsToFill; i++) {
            if (inFlight.size() == 32) {
                inFlight.poll().get();
            }
            SessionRecord s = sessions.create("bench");
            inFlight.add(sessions.turn("bench", s.id(), randomTokens(random, tokens, vocab, bos), List.of(), SamplingParams.greedy(), 1, true,
                    null));
        }
        for (var f : inFlight) {
            f.get();
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        json.put("fill_sessions", sessionsToFill);
        json.put("fill_seconds", hundredths(seconds));
        json.put("fill_sessions_per_s", hundredths(sessionsToFill / seconds));
        json.put("fill_tokens_per_s", hundredths((double) sessionsToFill * tokens / seconds));
    }

    private static long rssMiB() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmRSS:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) >> 10;
                }
            }
        } catch (IOException | NumberFormatException e) {
            // not Linux
        }
        return -1;
    }

    /**
     * Milliseconds from the turn call to its first token; the turn generates {@code decode} tokens and completes (and is
     * stored) before returning. {@code perToken[0]}: ms per token after the first; {@code last[0]}: the turn's result.
     */
    private static double ttft(SessionStore sessions, String tenant, String id, int[] message, int[] cached, int slot, int decode,
                               double[] perToken, SessionStore.TurnResult[] last) throws Exception {
        long[] first = {0};
        long[] latest = {0};
        long start = System.nanoTime();
        SessionStore.TurnResult r = sessions.turn(tenant, id, message, List.of(), SamplingParams.greedy(), decode, true,
                new GenerationListener() {
                    @Override
                    public void onToken(int token, String text) {
                        long now = System.nanoTime();
                        if (first[0] == 0) {
                            first[0] = now;
                        }
                        latest[0] = now;
                    }
                }).get();
        cached[slot] = r.cachedTokens();
        perToken[0] = decode > 1 ? (latest[0] - first[0]) / 1e6 / (decode - 1) : Double.NaN;
        last[0] = r;
        return (first[0] - start) / 1e6;
    }

    private static int[] randomTokens(SplittableRandom random, int n, int vocab, int bos) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = 3 + random.nextInt(vocab - 3);
        }
        if (bos >= 0) {
            t[0] = bos;
        }
        return t;
    }

    private static int[] concat(int[] a, int[] b) {
        int[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }


    static void deleteTree(Path dir) throws IOException {
        try (Stream<Path> paths = Files.walk(dir)) {
            for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
