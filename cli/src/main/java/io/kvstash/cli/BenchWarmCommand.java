package io.kvstash.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvstash.engine.EngineOptions;
import io.kvstash.engine.InferenceEngine;
import io.kvstash.engine.kv.KvCache;
import io.kvstash.engine.kv.KvChunk;
import io.kvstash.engine.kv.KvGeometry;
import io.kvstash.engine.kv.TransientChunks;
import io.kvstash.engine.model.SparseAttention;
import io.kvstash.offload.ChunkKey;
import io.kvstash.offload.WarmChunkFetcher;
import io.kvstash.persistence.WarmStore;
import io.kvstash.persistence.WarmStoreConfig;
import java.io.IOException;
import java.io.PrintWriter;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "bench-warm", mixinStandardHelpOptions = true,
        description = {"Decode at a long context with the chunks resident (hot) or parked in the warm tier. A text file (repeated"
                + " end to end) is prefilled to --tokens positions; each variant then decodes --steps tokens after it (after"
                + " --warmup unmeasured ones), and the cache is rewound between variants. After the hot variants every full chunk"
                + " but the sink is written to a RocksDB warm tier in a temporary directory (flushed to table files) and parked: its"
                + " summary stays, its body goes back to the store, and decode reads it into transient slots (TransientChunks),"
                + " never into the hot tier.",
                "Variants: dense/sparse hot; dense warm (every chunk read once per step, reused across layers); sparse warm, read"
                        + " per step (each step reads the union of its layers' picks); both also with prefetch (while a layer"
                        + " attends, the chunks the next layer needed in the previous step are read on a background thread); sparse warm kept (slots keep chunks across"
                        + " steps, least recently used out) with and without prefetch. reads/step: chunks read"
                        + " synchronously before a layer's attention; prefetch/step: chunks read by the prefetch thread."
                        + " With --round-slots, dense and sparse warm kept in each given number of slots: a layer that needs more"
                        + " parked chunks than the slots hold attends in rounds (a slot-full at a time, merged by log-sum-exp).",
                "ms/token: wall time of one decode step; cpu ms: process CPU time per step (all threads: compute, RocksDB,"
                        + " prefetch, JIT, GC); thread cpu ms: CPU time of the stepping thread, the compute pool's workers (their"
                        + " spin-waits included) and the prefetch thread; the machine may be shared, so wall time is noisy. hot bytes: chunks resident in the store (sink,"
                        + " tail; every chunk for hot variants) + key summaries (sparse or parked) + transient slots."
                        + " Sparse warm logits are checked bit for bit against sparse hot, dense warm against dense hot (same: yes);"
                        + " rounds sum in another order, so there the column gives the largest logit difference relative to the"
                        + " step's largest logit when every greedy token is the same (NO when one differs)."})
final class BenchWarmCommand implements Callable<Integer> {
    @Mixin
    EngineOptionsMixin engine;

    @Option(names = {"-f", "--file"}, required = true, paramLabel = "TEXT", description = "UTF-8 text to feed.")
    Path file;

    @Option(names = "--tokens", paramLabel = "N", description = "Context before the measured steps (default 8192).")
    int tokens = 8192;

    @Option(names = "--steps", paramLabel = "N", description = "Measured decode steps per variant (default 32).")
    int steps = 32;

    @Option(names = "--warmup", paramLabel = "N", description = "Unmeasured decode steps before each variant (default 8).")
    int warmup = 8;

    @Option(names = "--budget", paramLabel = "SHARE", description = "Sparse budget as a share of --tokens (default 0.25); no dense layers.")
    double budget = 0.25;

    @Option(names = "--slots", paramLabel = "N", description = "Transient slots of the sparse-kept variants (default: the most chunks"
            + " one layer needed at once in the read-per-step run).")
    int slots;

    @Option(names = "--round-slots", split = ",", paramLabel = "N[,N...]", description = "Also dense and sparse warm kept in this"
            + " many slots each, attending in rounds where a layer needs more (e.g. 8,16,32,64; default none).")
    int[] roundSlots = {};

    @Option(names = "--no-blob-files", description = "Store chunk values inside the table files (block cache) instead of blob files.")
    boolean noBlobFiles;

    @Option(names = "--clear-block-cache", description = "Clear RocksDB's block cache before every step of the warm variants.")
    boolean clearBlockCache;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    private record Result(String name, double msWall, double msCpu, double msThreadCpu, double chunksRead, double chunksPrefetched, long residentBytes, long summaryBytes,
                          long transientBytes, String sameLogits) {
        long hotBytes() {
            return residentBytes + summaryBytes + transientBytes;
        }
    }

    @Override
    public Integer call() throws IOException {
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw new IllegalArgumentException(file + ": no such file");
        }
        if (steps < 1 || warmup < 0 || !(budget > 0 && budget <= 1)) {
            throw new IllegalArgumentException("--steps must be at least 1, --warmup not negative, --budget in (0, 1]");
        }
        for (int n : roundSlots) {
            if (n < 1) {
                throw new IllegalArgumentException("--round-slots: every slot count must be at least 1, got " + n);
            }
        }
        EngineOptions options = engine.options();
        int chunkTokens = options.chunkTokens();
        if (tokens < 2 * chunkTokens || tokens % chunkTokens + warmup + steps >= chunkTokens) {
            throw new IllegalArgumentException("--tokens " + tokens + " must hold two chunks, and --warmup + --steps must not fill its tail"
                    + " chunk (rewinding needs an open tail): at most " + (chunkTokens - 1 - tokens % chunkTokens) + " steps");
        }
        int total = tokens + warmup + steps;
        options = options.withContextLength(Math.max(total, options.contextLength())).withSparse(SparseAttention.OFF);
        PrintWriter out = spec.commandLine().getOut();
        Path dir = Files.createTempDirectory("kvstash-bench-warm");
        WarmStoreConfig warmConfig = WarmStoreConfig.defaults(dir).withBlobFiles(!noBlobFiles);
        try (InferenceEngine e = InferenceEngine.open(engine.model, options); WarmStore warm = WarmStore.open(warmConfig);
             KvCache cache = e.newSequence()) {
            int[] ids = repeatedTokens(e, text, total);
            int vocab = e.config().vocabularySize();
            KvGeometry g = e.kvStore().geometry();
            int budgetTokens = Math.max(1, (int) Math.round(budget * tokens));
            SparseAttention sparse = new SparseAttention(true, budgetTokens, 0, 0);
            e.forward(cache, ids, 0, tokens, tokens, null);
            int full = cache.fullChunks();
            long summaries = (long) full * KvChunk.summaryBytes(g, sparse.summaryTokens(g.chunkTokens()));
            out.printf("%s, KV %s, %d positions (%d full chunks of %d B, summary %d B each), sparse budget %d tokens, %d steps after %d"
                    + " warm-up, warm tier %s%s%n", engine.model.getFileName(), g.format(), tokens, full, g.chunkBytes(),
                    KvChunk.summaryBytes(g, sparse.summaryTokens(g.chunkTokens())), budgetTokens, steps, warmup, noBlobFiles ? "values in table files" : "blob files",
                    clearBlockCache ? ", block cache cleared every step" : "");

            float[][] denseLogits = new float[steps][vocab];
            float[][] sparseLogits = new float[steps][vocab];
            Result[] results = new Result[9 + 2 * roundSlots.length];
            int r = 0;
            e.setSparse(SparseAttention.OFF);
            results[r++] = run(e, cache, ids, "dense, hot", null, false, null, null, 0);
            e.setSparse(sparse);
            results[r++] = run(e, cache, ids, "sparse, hot", null, false, null, sparseLogits, summaries);
            e.setSparse(SparseAttention.OFF);
            run(e, cache, ids, "dense, hot (logits)", null, false, null, denseLogits, 0);

            WarmChunkFetcher fetcher = new WarmChunkFetcher(warm, g, e.fingerprint());
            ChunkKey[] keys = ChunkKey.chain("bench-warm", e.fingerprint(), g.format(), chunkTokens, ids, full);
            cache.useTransientChunks(new TransientChunks(g, full - 1, false));
            for (int ch = 1; ch < full; ch++) {
                fetcher.writeAndPark(cache, ch, keys[ch], sparse.summaryTokens(chunkTokens));
            }
            warm.flush();

            e.setSparse(SparseAttention.OFF);
            results[r++] = run(e, cache, ids, "dense, warm, read per step", warm, true, denseLogits, null, summaries);
            cache.useTransientChunks(new TransientChunks(g, full - 1, true));
            results[r++] = run(e, cache, ids, "dense, warm, read per step, prefetch", warm, true, denseLogits, null, summaries);
            e.setSparse(sparse);
            cache.useTransientChunks(new TransientChunks(g, full - 1, true));
            results[r++] = run(e, cache, ids, "sparse, warm, read per step, prefetch", warm, true, sparseLogits, null, summaries);
            cache.useTransientChunks(new TransientChunks(g, full - 1, false));
            results[r++] = run(e, cache, ids, "sparse, warm, read per step", warm, true, sparseLogits, null, summaries);
            int peak = cache.transientChunks().stats().peakNeeded();
            double meanNeeded = cache.transientChunks().stats().meanNeeded();
            out.printf("sparse: a layer needed %.1f parked chunks at once on average, %d at most (of %d parked)%n", meanNeeded, peak, full - 1);
            int kept = slots > 0 ? slots : peak;
            cache.useTransientChunks(new TransientChunks(g, full - 1, false));
            results[r++] = run(e, cache, ids, "sparse, warm, kept, " + (full - 1) + " slots", warm, false, sparseLogits, null, summaries);
            if (kept < full - 1) {
                cache.useTransientChunks(new TransientChunks(g, kept, false));
                results[r++] = run(e, cache, ids, "sparse, warm, kept, " + kept + " slots", warm, false, sparseLogits, null, summaries);
            }
            cache.useTransientChunks(new TransientChunks(g, kept, true));
            results[r++] = run(e, cache, ids, "sparse, warm, kept, " + kept + " slots, prefetch", warm, false, sparseLogits, null, summaries);
            for (int n : roundSlots) {
                e.setSparse(SparseAttention.OFF);
                cache.useTransientChunks(new TransientChunks(g, n, false));
                results[r++] = run(e, cache, ids, "dense, warm, kept, " + n + " slots" + (n < full - 1 ? ", rounds" : ""), warm, false,
                        denseLogits, null, summaries);
                e.setSparse(sparse);
                cache.useTransientChunks(new TransientChunks(g, n, false));
                results[r++] = run(e, cache, ids, "sparse, warm, kept, " + n + " slots" + (n < peak ? ", rounds" : ""), warm, false,
                        sparseLogits, null, summaries);
            }

            out.printf("%-40s %9s %9s %8s %8s %9s %9s %12s %12s %12s %12s %8s%n", "variant", "ms/token", "tokens/s", "cpu ms", "thread ms",
                    "reads/step",
                    "prefetch/step",
                    "resident", "summaries", "transient", "hot total", "same");
            ObjectNode json = new ObjectMapper().createObjectNode();
            json.put("model", engine.model.getFileName().toString());
            json.put("kv", g.format().name());
            json.put("tokens", tokens);
            json.put("steps", steps);
            json.put("budget_tokens", budgetTokens);
            json.put("blob_files", !noBlobFiles);
            json.put("block_cache_cleared_each_step", clearBlockCache);
            json.put("peak_parked_chunks_one_layer", peak);
            json.put("mean_parked_chunks_one_layer", BenchStats.hundredths(meanNeeded));
            ArrayNode rows = json.putArray("variants");
            for (Result x : Arrays.copyOf(results, r)) {
                out.printf("%-40s %9.2f %9.1f %8.2f %8.2f %9.1f %9.1f %12s %12s %12s %12s %8s%n", x.name, x.msWall, 1000 / x.msWall, x.msCpu,
                        x.msThreadCpu, x.chunksRead, x.chunksPrefetched, mib(x.residentBytes), mib(x.summaryBytes), mib(x.transientBytes), mib(x.hotBytes()), x.sameLogits);
                ObjectNode row = rows.addObject();
                row.put("variant", x.name);
                row.put("ms_per_token", BenchStats.hundredths(x.msWall));
                row.put("tokens_per_s", BenchStats.hundredths(1000 / x.msWall));
                row.put("cpu_ms_per_token", BenchStats.hundredths(x.msCpu));
                row.put("thread_cpu_ms_per_token", BenchStats.hundredths(x.msThreadCpu));
                row.put("chunks_read_per_step", BenchStats.hundredths(x.chunksRead));
                row.put("chunks_prefetched_per_step", BenchStats.hundredths(x.chunksPrefetched));
                row.put("resident_bytes", x.residentBytes);
                row.put("summary_bytes", x.summaryBytes);
                row.put("transient_bytes", x.transientBytes);
                row.put("hot_bytes", x.hotBytes());
                row.put("same_logits_as_hot", x.sameLogits);
            }
            out.println(json);
        } finally {
            BenchResumeCommand.deleteTree(dir);
        }
        return 0;
    }

    /**
     * Decodes {@code warmup} then {@code steps} tokens after {@code tokens}, measuring the latter, and
     * rewinds. {@code record} receives the measured steps' logits, {@code expect} is compared with them.
     */
    private Result run(InferenceEngine e, KvCache cache, int[] ids, String name, WarmStore warm, boolean readPerStep, float[][] expect,
                       float[][] record, long summaryBytes) {
        var os = (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        float[] logits = new float[e.config().vocabularySize()];
        TransientChunks slots = cache.transientChunks();
        double[] wall = new double[steps];
        long cpu = 0;
        long threadCpu = 0;
        long[] computeThreads = computeThreadIds();
        var threadBean = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        double worst = 0;
        boolean sameTokens = true;
        long readsBefore = 0;
        long prefetchedBefore = 0;
        boolean same = true;
        long transientInUse = 0;
        for (int i = 0; i < warmup + steps; i++) {
            if (slots != null && readPerStep) {
                slots.clear();
            }
            if (warm != null && clearBlockCache) {
                warm.clearBlockCache();
            }
            if (i == warmup && slots != null) {
                readsBefore = slots.stats().fetched();
                prefetchedBefore = slots.stats().prefetched();
            }
            long tc0 = threadCpuTime(threadBean, computeThreads);
            long c0 = os.getProcessCpuTime();
            long t0 = System.nanoTime();
            e.forward(cache, ids, tokens + i, 1, 0, logits);
            long t1 = System.nanoTime();
            long c1 = os.getProcessCpuTime();
            long tc1 = threadCpuTime(threadBean, computeThreads);
            if (i >= warmup) {
                int m = i - warmup;
                wall[m] = (t1 - t0) / 1e6;
                cpu += c1 - c0;
                threadCpu += tc1 - tc0;
                if (record != null) {
                    System.arraycopy(logits, 0, record[m], 0, logits.length);
                }
                if (expect != null) {
                    same &= Arrays.equals(expect[m], logits);
                    float largest = 0;
                    float diff = 0;
                    for (int j = 0; j < logits.length; j++) {
                        largest = Math.max(largest, Math.abs(expect[m][j]));
                        diff = Math.max(diff, Math.abs(expect[m][j] - logits[j]));
                    }
                    worst = Math.max(worst, diff / largest);
                    sameTokens &= argmax(expect[m]) == argmax(logits);
                }
                if (slots != null) {
                    transientInUse = Math.max(transientInUse, slots.bytesInUse());
                }
            }
        }
        long resident = e.kvStore().bytesInUse();
        double reads = slots == null ? 0 : (double) (slots.stats().fetched() - readsBefore) / steps;
        double prefetched = slots == null ? 0 : (double) (slots.stats().prefetched() - prefetchedBefore) / steps;
        if (cache.truncate(tokens) != tokens) {
            throw new IllegalStateException("could not rewind to " + tokens);
        }
        String sameLogits = expect == null ? "-" : same ? "yes" : sameTokens ? String.format("%.1e", worst) : "NO";
        return new Result(name, BenchStats.median(wall), cpu / 1e6 / steps, threadCpu / 1e6 / steps, reads, prefetched, resident,
                summaryBytes, slots == null ? 0 : Math.max(transientInUse, 0), sameLogits);
    }

    /** The current thread, the compute pool's workers and a prefetch thread: those that run a decode step. */
    private static long[] computeThreadIds() {
        return Thread.getAllStackTraces().keySet().stream()
                .filter(t -> t == Thread.currentThread() || t.getName().startsWith("kvstash-compute-")
                        || t.getName().equals("kvstash-chunk-prefetch"))
                .mapToLong(Thread::threadId).toArray();
    }

    private static long threadCpuTime(com.sun.management.ThreadMXBean bean, long[] ids) {
        long sum = 0;
        for (long id : ids) {
            sum += Math.max(0, bean.getThreadCpuTime(id));
        }
        return sum;
    }

    private static int argmax(float[] x) {
        int best = 0;
        for (int i = 1; i < x.length; i++) {
            if (x[i] > x[best]) {
                best = i;
            }
        }
        return best;
    }

    private static int[] repeatedTokens(InferenceEngine e, String text, int total) {
        int[] first = e.tokenizer().encode(text, true, false);
        int[] again = e.tokenizer().encode(text, false, false);
        if (again.length == 0) {
            throw new IllegalArgumentException("the text file holds no text");
        }
        int[] ids = Arrays.copyOf(first, Math.max(first.length, total));
        for (int n = first.length; n < total; n += again.length) {
            System.arraycopy(again, 0, ids, n, Math.min(again.length, total - n));
        }
        return ids;
    }

    private static String mib(long b) {
        return String.format("%.2f MiB", b / (double) (1 << 20));
    }
}
