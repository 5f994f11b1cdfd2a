package io.kvstash.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvstash.engine.EngineOptions;
import io.kvstash.engine.InferenceEngine;
import io.kvstash.engine.kernel.VectorMath;
import io.kvstash.engine.kv.ChunkLayout;
import io.kvstash.engine.kv.KvCache;
import io.kvstash.engine.kv.KvChunk;
import io.kvstash.engine.kv.KvFormat;
import io.kvstash.engine.kv.KvGeometry;
import io.kvstash.engine.model.SparseAttention;
import io.kvstash.engine.model.SparseProbe;
import java.io.IOException;
import java.io.PrintWriter;
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

@Command(name = "sparse-fidelity", mixinStandardHelpOptions = true,
        description = {"Sparse decode against dense attention on the same cache. A text file (repeated end to end if it is shorter than"
                + " the longest context) is prefilled densely; at each context L the last --positions tokens before L are decoded"
                + " one at a time, each once sparsely per budget (a share of L: positions of the sink and the chosen chunks; the tail, under a chunk, comes on top) and"
                + " once densely; the dense run's KV is the one kept, so every comparison sees the same cache.",
                "top1: share of positions where the sparse and dense next-token argmax agree. kl: mean KL(dense || sparse) of the"
                        + " next-token distributions, in nats. mass: share of the dense softmax mass on the positions the sparse head"
                        + " attended over, averaged over sparse layers, query heads and positions. Positions whose token would seal a"
                        + " chunk are decoded densely and not measured (a sealed chunk cannot be rewound exactly).",
                "hot bytes at L: dense = every chunk; sparse = key summaries + the chunks some layer's head chose (whole chunks: a"
                        + " chunk holds all layers, and dense layers need every chunk) + the tail; per-layer = if chunks were"
                        + " stored per layer. ms/token: one decode step, sparse without the probe vs dense (chunks in memory).",
                "Prints a table, then one JSON object."})
final class SparseFidelityCommand implements Callable<Integer> {
    @Mixin
    EngineOptionsMixin engine;

    @Option(names = {"-f", "--file"}, required = true, paramLabel = "TEXT", description = "UTF-8 text to feed.")
    Path file;

    @Option(names = "--contexts", split = ",", paramLabel = "L", description = "Context lengths, ascending (default 512,2048,8192).")
    int[] contexts = {512, 2048, 8192};

    @Option(names = "--budgets", split = ",", paramLabel = "SHARE", description = "Budgets as shares of the context (default 0.125,0.25,0.5).")
    double[] budgets = {0.125, 0.25, 0.5};

    @Option(names = "--positions", paramLabel = "N", description = "Decode positions per context, before it (default 32).")
    int positions = 32;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    /** What one (context, budget) pair accumulates. */
    private static final class Cell {
        final SparseProbe probe = new SparseProbe();
        final float[] logits;
        int measured;
        int agree;
        double kl;
        long nanos;
        double wholeChunks;
        double perLayerChunks;

        Cell(int vocab) {
            logits = new float[vocab];
        }
    }

    @Override
    public Integer call() throws IOException {
        if (positions < 1) {
            throw new IllegalArgumentException("--positions must be at least 1, got " + positions);
        }
        for (int i = 0; i < contexts.length; i++) {
            if (contexts[i] <= positions || (i > 0 && contexts[i] <= contexts[i - 1])) {
                throw new IllegalArgumentException("--contexts must ascend and each exceed --positions " + positions + ": "
                        + Arrays.toString(contexts));
            }
        }
        for (double b : budgets) {
            if (!(b > 0 && b <= 1)) {
                throw new IllegalArgumentException("--budgets must be shares in (0, 1], got " + b);
            }
        }
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw new IllegalArgumentException(file + ": no such file");
        }
        int maxContext = contexts[contexts.length - 1];
        EngineOptions options = engine.options();
        options = options.withContextLength(Math.max(maxContext, options.contextLength())).withSparse(SparseAttention.OFF);
        SparseAttention settings = engine.sparseSettings().on().withMinContext(0);
        int denseLayers = settings.denseLayers();
        PrintWriter out = spec.commandLine().getOut();
        try (InferenceEngine e = InferenceEngine.open(engine.model, options); KvCache cache = e.newSequence()) {
            int[] first = e.tokenizer().encode(text, true, false);
            int[] again = e.tokenizer().encode(text, false, false);
            if (again.length == 0) {
                throw new IllegalArgumentException(file + " holds no text");
            }
            int[] tokens = Arrays.copyOf(first, Math.max(first.length, maxContext));
            int repeats = 1;
            for (int n = first.length; n < maxContext; n += again.length, repeats++) {
                System.arraycopy(again, 0, tokens, n, Math.min(again.length, maxContext - n));
            }
            int vocab = e.config().vocabularySize();
            int layers = e.config().layers();
            KvGeometry g = e.kvStore().geometry();
            int chunkTokens = g.chunkTokens();
            long chunkBytes = g.chunkBytes();
            long tailBytes = ChunkLayout.of(g, KvFormat.F32).chunkBytes();
            long summaryBytes = KvChunk.summaryBytes(g, settings.summaryTokens(chunkTokens));
            float[] dense = new float[vocab];
            ObjectNode json = new ObjectMapper().createObjectNode();
            json.put("model", engine.model.getFileName().toString());
            json.put("kv", g.format().name());
            json.put("file", file.toString());
            json.put("file_tokens", first.length);
            json.put("text_copies", repeats);
            json.put("positions_per_context", positions);
            json.put("dense_layers", denseLayers);
            json.put("scoring", settings.scoring().name());
            json.put("summary_tokens", settings.summaryTokens(chunkTokens));
            json.put("layers", layers);
            json.put("chunk_bytes", chunkBytes);
            json.put("summary_bytes_per_chunk", summaryBytes);
            json.put("summary_share_of_chunk", (double) summaryBytes / chunkBytes);
            ArrayNode rows = json.putArray("rows");
            out.printf("%s, KV %s, %d layers (%d dense), text of %d tokens x %d copies; scoring %s, summary sub-blocks of %d"
                            + " tokens, %d B per %d B chunk (%.2f%%)%n",
                    engine.model.getFileName(), g.format(), layers, denseLayers, first.length, repeats, settings.scoring(),
                    settings.summaryTokens(chunkTokens), summaryBytes, chunkBytes, 100.0 * summaryBytes / chunkBytes);
            out.printf("%7s %7s %7s %5s %7s %9s %7s %12s %12s %12s %9s %9s%n", "context", "budget", "tokens", "n", "top1", "kl",
                    "mass", "hot dense", "hot sparse", "per-layer", "ms sparse", "ms dense");
            for (int context : contexts) {
                int start = context - positions;
                if (cache.length() < start) {
                    e.forward(cache, tokens, cache.length(), start - cache.length(), start - cache.length(), null);
                }
                Cell[] cells = new Cell[budgets.length];
                for (int b = 0; b < budgets.length; b++) {
                    cells[b] = new Cell(vocab);
                }
                long denseNanos = 0;
                double fullChunks = 0;
                int measured = 0;
                for (int p = start; p < context; p++) {
                    boolean measurable = (p + 1) % chunkTokens != 0;
                    int chunks = p / chunkTokens + 1;
                    int full = p / chunkTokens;
                    if (measurable) {
                        for (int b = 0; b < budgets.length; b++) {
                            Cell cell = cells[b];
                            int budgetTokens = Math.max(1, (int) Math.round(budgets[b] * context));
                            e.setSparse(settings.withBudgetTokens(budgetTokens));
                            long t0 = System.nanoTime();
                            e.forward(cache, tokens, p, 1, 0, cell.logits);
                            cell.nanos += System.nanoTime() - t0;
                            rewind(cache, p);
                            cell.probe.clearChunks(layers, chunks);
                            e.setSparseProbe(cell.probe);
                            e.forward(cache, tokens, p, 1, 1, null);
                            e.setSparseProbe(null);
                            rewind(cache, p);
                            e.setSparse(SparseAttention.OFF);
                            int any = cell.probe.chosenChunksAnyLayer(layers);
                            // A layer that attended densely (or where the budget covered everything) needs every chunk.
                            boolean allLayersSparse = true;
                            double perLayer = 0;
                            for (int l = 0; l < layers; l++) {
                                int chosen = cell.probe.chosenChunks(l);
                                allLayersSparse &= chosen > 0;
                                perLayer += chosen > 0 ? chosen - 1 : full;
                            }
                            cell.wholeChunks += allLayersSparse ? any - 1 : full;
                            cell.perLayerChunks += perLayer / layers;
                        }
                    }
                    long t0 = System.nanoTime();
                    e.forward(cache, tokens, p, 1, 0, dense);
                    denseNanos += System.nanoTime() - t0;
                    if (measurable) {
                        measured++;
                        fullChunks += full;
                        for (Cell cell : cells) {
                            cell.measured++;
                            if (VectorMath.argmax(cell.logits, vocab) == VectorMath.argmax(dense, vocab)) {
                                cell.agree++;
                            }
                            cell.kl += kl(dense, cell.logits, vocab);
                        }
                    }
                }
                double msDense = denseNanos / 1e6 / positions;
                double denseHot = fullChunks / measured * chunkBytes + tailBytes;
                for (int b = 0; b < budgets.length; b++) {
                    Cell cell = cells[b];
                    int budgetTokens = Math.max(1, (int) Math.round(budgets[b] * context));
                    double summaries = fullChunks / measured * summaryBytes;
                    double sparseHot = summaries + cell.wholeChunks / measured * chunkBytes + tailBytes;
                    double perLayerHot = summaries + cell.perLayerChunks / measured * chunkBytes + tailBytes;
                    double top1 = (double) cell.agree / cell.measured;
                    double kl = cell.kl / cell.measured;
                    double mass = cell.probe.meanMassCaptured();
                    double msSparse = cell.nanos / 1e6 / cell.measured;
                    // No mass measured: the budget covered every chunk, so decode was dense.
                    out.printf("%7d %7.3f %7d %5d %6.1f%% %9.2e %7s %12s %12s %12s %9.3f %9.3f%n", context, budgets[b], budgetTokens,
                            cell.measured, 100 * top1, kl, Double.isNaN(mass) ? "dense" : String.format("%.1f%%", 100 * mass),
                            bytes(denseHot), bytes(sparseHot), bytes(perLayerHot), msSparse, msDense);
                    ObjectNode row = rows.addObject();
                    row.put("context", context);
                    row.put("budget_share", budgets[b]);
                    row.put("budget_tokens", budgetTokens);
                    row.put("measured_positions", cell.measured);
                    row.put("top1_agreement", top1);
                    row.put("mean_kl", kl);
                    if (!Double.isNaN(mass)) {
                        row.put("mass_captured", mass);
                    }
                    row.put("hot_bytes_dense", Math.round(denseHot));
                    row.put("hot_bytes_sparse_whole_chunks", Math.round(sparseHot));
                    row.put("hot_bytes_sparse_per_layer", Math.round(perLayerHot));
                    row.put("hot_bytes_summaries", Math.round(summaries));
                    row.put("ms_per_token_sparse", msSparse);
                    row.put("ms_per_token_dense", msDense);
                }
            }
            out.println(json);
        }
        return 0;
    }

    /** Takes back the position just decoded; it never completed a chunk, so the tail reopens exactly. */
    private static void rewind(KvCache cache, int length) {
        if (cache.truncate(length) != length) {
            throw new IllegalStateException("could not rewind the cache to " + length);
        }
    }

    /** KL(p || q) in nats for the softmax distributions of two logit rows. */
    static double kl(float[] p, float[] q, int n) {
        double pMax = Double.NEGATIVE_INFINITY;
        double qMax = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            pMax = Math.max(pMax, p[i]);
            qMax = Math.max(qMax, q[i]);
        }
        double pSum = 0;
        double qSum = 0;
        for (int i = 0; i < n; i++) {
            pSum += Math.exp(p[i] - pMax);
            qSum += Math.exp(q[i] - qMax);
        }
        double pLog = pMax + Math.log(pSum);
        double qLog = qMax + Math.log(qSum);
        double kl = 0;
        for (int i = 0; i < n; i++) {
            double lp = p[i] - pLog;
            kl += Math.exp(lp) * (lp - (q[i] - qLog));
        }
        return Math.max(0, kl);
    }

    private static String bytes(double b) {
        return b >= 1 << 20 ? String.format("%.2f MiB", b / (1 << 20)) : String.format("%.1f KiB", b / 1024);
    }
}
