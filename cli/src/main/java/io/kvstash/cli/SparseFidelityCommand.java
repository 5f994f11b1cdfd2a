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
import io.kvstash.engine.model.OracleDecode;
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
                "--oracle replaces the sparse scoring by the best choice any selector could make: per layer and query head (or KV"
                        + " group, --oracle-choice), the sink chunk, the tail and the units of 1 (tokens), N (blocksN) or a chunk"
                        + " (chunks) of positions that carry the most exact dense attention weight, as many as the budget holds (budget"
                        + " accounting as above). It scores every key: no speed or hot bytes are reported for it.",
                "near-tie: a position whose dense top-2 next-token probabilities differ by less than --tie-gap; reported as the"
                        + " misses among them and the agreement over the other positions (a side statistic).",
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

    @Option(names = "--oracle", split = ",", paramLabel = "UNITS", description = "Oracle selection instead of the sparse scoring, at"
            + " these granularities: tokens, blocksN (N positions, dividing the chunk), chunks; e.g. tokens,blocks16,blocks32,chunks.")
    String[] oracle = {};

    @Option(names = "--oracle-choice", split = ",", paramLabel = "WHO", description = "With --oracle, whose weights choose: head (each"
            + " query head its own), group (a KV group's query heads together, as sparse decode chooses); default group.")
    String[] oracleChoiceNames = {"group"};

    private OracleDecode.Choice[] oracleChoices;

    @Option(names = "--tie-gap", paramLabel = "P", description = "Dense top-2 probability gap under which a position counts as a"
            + " near-tie (default 0.01).")
    double tieGap = 0.01;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    /** What one (context, budget) pair, or one (context, budget, oracle variant), accumulates. */
    private static final class Cell {
        final SparseProbe probe = new SparseProbe();
        final float[] logits;
        final int budget;                 // index into budgets
        final OracleDecode oracle;        // null: the sparse scoring
        final int units;                  // oracle granularity in positions
        final OracleDecode.Choice choice; // oracle choice
        final String variant;
        int measured;
        int agree;
        int tieMisses;                    // disagreements where dense's top-2 gap is under --tie-gap
        int clearMeasured;                // positions whose dense top-2 gap is at least --tie-gap
        int clearAgree;
        double kl;
        long nanos;
        double wholeChunks;
        double perLayerChunks;

        Cell(int vocab, int budget, OracleDecode oracle, int units, OracleDecode.Choice choice, String variant) {
            logits = new float[vocab];
            this.budget = budget;
            this.oracle = oracle;
            this.units = units;
            this.choice = choice;
            this.variant = variant;
        }

        double mass() {
            return oracle == null ? probe.meanMassCaptured() : oracle.meanMassCaptured();
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
        if (!(tieGap >= 0 && tieGap < 1)) {
            throw new IllegalArgumentException("--tie-gap must be a probability gap in [0, 1), got " + tieGap);
        }
        oracleChoices = new OracleDecode.Choice[oracleChoiceNames.length];
        for (int i = 0; i < oracleChoiceNames.length; i++) {
            oracleChoices[i] = switch (oracleChoiceNames[i].toLowerCase(java.util.Locale.ROOT)) {
                case "head" -> OracleDecode.Choice.HEAD;
                case "group" -> OracleDecode.Choice.GROUP;
                default -> throw new IllegalArgumentException("--oracle-choice takes head or group, got '" + oracleChoiceNames[i] + "'");
            };
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
            int[] oracleUnits = new int[oracle.length];
            for (int i = 0; i < oracle.length; i++) {
                oracleUnits[i] = oracleUnits(oracle[i], chunkTokens);
            }
            float[] dense = new float[vocab];
            ObjectNode json = new ObjectMapper().createObjectNode();
            json.put("model", engine.model.getFileName().toString());
            json.put("kv", g.format().name());
            json.put("file", file.toString());
            json.put("file_tokens", first.length);
            json.put("text_copies", repeats);
            json.put("positions_per_context", positions);
            json.put("dense_layers", denseLayers);
            json.put("scoring", oracle.length > 0 ? "ORACLE" : settings.scoring().name());
            json.put("tie_gap", tieGap);
            int summary = settings.summaryTokens(chunkTokens);
            if (summary == KvChunk.SKETCH) {
                json.putNull("summary_tokens");
            } else {
                json.put("summary_tokens", summary);
            }
            json.put("summary", SparseAttention.describeSummary(summary));
            json.put("layers", layers);
            json.put("chunk_bytes", chunkBytes);
            json.put("summary_bytes_per_chunk", summaryBytes);
            json.put("summary_share_of_chunk", (double) summaryBytes / chunkBytes);
            ArrayNode rows = json.putArray("rows");
            boolean oracleMode = oracle.length > 0;
            if (oracleMode) {
                out.printf("%s, KV %s, %d layers (%d dense), text of %d tokens x %d copies; oracle selection by exact dense weight,"
                                + " near-tie gap %.3g%n", engine.model.getFileName(), g.format(), layers, denseLayers, first.length, repeats,
                        tieGap);
                out.printf("%7s %7s %7s %-14s %5s %7s %9s %7s %6s %9s %9s%n", "context", "budget", "tokens", "oracle", "n", "top1", "kl",
                        "mass", "misses", "tie-miss", "top1 !tie");
            } else {
                out.printf("%s, KV %s, %d layers (%d dense), text of %d tokens x %d copies; scoring %s, summary %s,"
                                + " %d B per %d B chunk (%.2f%%); near-tie gap %.3g%n",
                        engine.model.getFileName(), g.format(), layers, denseLayers, first.length, repeats, settings.scoring(),
                        SparseAttention.describeSummary(summary), summaryBytes, chunkBytes, 100.0 * summaryBytes / chunkBytes, tieGap);
                out.printf("%7s %7s %7s %5s %7s %9s %7s %12s %12s %12s %9s %9s %6s %9s %9s%n", "context", "budget", "tokens", "n", "top1",
                        "kl", "mass", "hot dense", "hot sparse", "per-layer", "ms sparse", "ms dense", "misses", "tie-miss", "top1 !tie");
            }
            for (int context : contexts) {
                int start = context - positions;
                if (cache.length() < start) {
                    e.forward(cache, tokens, cache.length(), start - cache.length(), start - cache.length(), null);
                }
                Cell[] cells = cells(e, vocab, oracleUnits);
                long denseNanos = 0;
                double fullChunks = 0;
                int measured = 0;
                for (int p = start; p < context; p++) {
                    boolean measurable = (p + 1) % chunkTokens != 0;
                    int chunks = p / chunkTokens + 1;
                    int full = p / chunkTokens;
                    if (measurable) {
                        for (Cell cell : cells) {
                            int budgetTokens = Math.max(1, (int) Math.round(budgets[cell.budget] * context));
                            if (cell.oracle != null) {
                                long t0 = System.nanoTime();
                                cell.oracle.decode(cache, tokens[p], budgetTokens, cell.units, cell.choice, denseLayers, cell.logits);
                                cell.nanos += System.nanoTime() - t0;
                                rewind(cache, p);
                                continue;
                            }
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
                        boolean tie = topTwoGap(dense, vocab) < tieGap;
                        for (Cell cell : cells) {
                            cell.measured++;
                            boolean agree = VectorMath.argmax(cell.logits, vocab) == VectorMath.argmax(dense, vocab);
                            cell.agree += agree ? 1 : 0;
                            cell.tieMisses += tie && !agree ? 1 : 0;
                            cell.clearMeasured += tie ? 0 : 1;
                            cell.clearAgree += !tie && agree ? 1 : 0;
                            cell.kl += kl(dense, cell.logits, vocab);
                        }
                    }
                }
                double msDense = denseNanos / 1e6 / positions;
                double denseHot = fullChunks / measured * chunkBytes + tailBytes;
                for (Cell cell : cells) {
                    int b = cell.budget;
                    int budgetTokens = Math.max(1, (int) Math.round(budgets[b] * context));
                    double summaries = fullChunks / measured * summaryBytes;
                    double sparseHot = summaries + cell.wholeChunks / measured * chunkBytes + tailBytes;
                    double perLayerHot = summaries + cell.perLayerChunks / measured * chunkBytes + tailBytes;
                    double top1 = (double) cell.agree / cell.measured;
                    double kl = cell.kl / cell.measured;
                    double mass = cell.mass();
                    double msSparse = cell.nanos / 1e6 / cell.measured;
                    // No mass measured: the budget covered every chunk, so decode was dense.
                    String massText = Double.isNaN(mass) ? "dense" : String.format("%.1f%%", 100 * mass);
                    int misses = cell.measured - cell.agree;
                    String clear = cell.clearMeasured == 0 ? "-"
                            : String.format("%.1f%%/%d", 100.0 * cell.clearAgree / cell.clearMeasured, cell.clearMeasured);
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
                    row.put("misses", misses);
                    row.put("near_tie_misses", cell.tieMisses);
                    row.put("non_tie_positions", cell.clearMeasured);
                    if (cell.clearMeasured > 0) {
                        row.put("top1_agreement_non_ties", (double) cell.clearAgree / cell.clearMeasured);
                    }
                    if (oracleMode) {
                        out.printf("%7d %7.3f %7d %-14s %5d %6.1f%% %9.2e %7s %6d %9d %9s%n", context, budgets[b], budgetTokens, cell.variant,
                                cell.measured, 100 * top1, kl, massText, misses, cell.tieMisses, clear);
                        row.put("oracle_units", cell.units);
                        row.put("oracle_choice", cell.choice.name().toLowerCase(java.util.Locale.ROOT));
                        continue;
                    }
                    out.printf("%7d %7.3f %7d %5d %6.1f%% %9.2e %7s %12s %12s %12s %9.3f %9.3f %6d %9d %9s%n", context, budgets[b],
                            budgetTokens, cell.measured, 100 * top1, kl, massText, bytes(denseHot), bytes(sparseHot), bytes(perLayerHot),
                            msSparse, msDense, misses, cell.tieMisses, clear);
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

    /** One cell per budget, or with --oracle one per (budget, granularity, choice), budgets outermost. */
    private Cell[] cells(InferenceEngine e, int vocab, int[] oracleUnits) {
        if (oracle.length == 0) {
            Cell[] cells = new Cell[budgets.length];
            for (int b = 0; b < budgets.length; b++) {
                cells[b] = new Cell(vocab, b, null, 0, null, "");
            }
            return cells;
        }
        Cell[] cells = new Cell[budgets.length * oracleUnits.length * oracleChoices.length];
        int i = 0;
        for (int b = 0; b < budgets.length; b++) {
            for (int u = 0; u < oracleUnits.length; u++) {
                for (OracleDecode.Choice choice : oracleChoices) {
                    cells[i++] = new Cell(vocab, b, new OracleDecode(e.model()), oracleUnits[u], choice,
                            oracle[u] + "/" + choice.name().toLowerCase(java.util.Locale.ROOT));
                }
            }
        }
        return cells;
    }

    /** Positions per oracle unit named by {@code name}: tokens = 1, blocksN = N, chunks = the chunk size. */
    static int oracleUnits(String name, int chunkTokens) {
        int units;
        if (name.equals("tokens")) {
            units = 1;
        } else if (name.equals("chunks")) {
            units = chunkTokens;
        } else if (name.matches("blocks[0-9]{1,6}")) {
            units = Integer.parseInt(name.substring("blocks".length()));
        } else {
            throw new IllegalArgumentException("--oracle takes tokens, blocksN or chunks, got '" + name + "'");
        }
        if (units < 1 || chunkTokens % units != 0) {
            throw new IllegalArgumentException("--oracle " + name + ": blocks of " + units + " positions do not divide chunks of "
                    + chunkTokens + " positions");
        }
        return units;
    }

    /** Difference of the two largest softmax probabilities of a logit row. */
    static double topTwoGap(float[] logits, int n) {
        int top = VectorMath.argmax(logits, n);
        float second = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            if (i != top) {
                second = Math.max(second, logits[i]);
            }
        }
        double max = logits[top];
        double sum = 0;
        for (int i = 0; i < n; i++) {
            sum += Math.exp(logits[i] - max);
        }
        return (1 - Math.exp(second - max)) / sum;
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
