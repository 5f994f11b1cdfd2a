package io.kvstash.engine.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.gguf.TinyModels;
import io.kvstash.engine.kernel.ComputePool;
import io.kvstash.engine.kv.KvCache;
import io.kvstash.engine.kv.KvFormat;
import io.kvstash.engine.kv.KvGeometry;
import io.kvstash.engine.kv.SlabKvStore;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The oracle decode: it is the forward pass bit for bit wherever it must attend densely; at whole
 * chunks chosen per KV group it is the forward pass with EXACT chunk scoring; and at a small budget
 * finer units capture at least as much dense mass as coarser ones, a head's own choice at least as
 * much as its group's.
 */
class OracleDecodeTest {
    static final int CHUNK = 16;
    static final int PREFILL = 200; // 12 full chunks and a tail
    static final int DECODE = 24;
    static final int[] UNITS = {1, 4, 8, CHUNK};

    @TempDir
    static Path dir;
    private static ComputePool pool;
    private static Path tiny;

    @BeforeAll
    static void setUp() {
        pool = new ComputePool(2);
        tiny = TinyModels.write(dir.resolve("tiny.gguf"),
                TinyModels.Spec.builder().heads(4).kvHeads(2).layers(3).contextLength(256).seed(33).build());
    }

    @AfterAll
    static void tearDown() {
        pool.close();
    }

    private static KvGeometry geometry(ModelConfig c) {
        return new KvGeometry(c.layers(), c.kvHeads(), c.headDim(), CHUNK, KvFormat.F16);
    }

    @Test
    void shouldEqualDenseBitForBitWhenBudgetCoversContextOrLayersAreDense() {
        try (GgufFile f = GgufFile.open(tiny); LlamaModel model = LlamaModel.load(f)) {
            ModelConfig c = model.config();
            int vocab = c.vocabularySize();
            int[] tokens = ForwardPassReferenceTest.randomTokens(vocab, PREFILL + 8, 7);
            ForwardPass pass = new ForwardPass(model, pool, 64);
            OracleDecode oracle = new OracleDecode(model);
            float[] dense = new float[vocab];
            float[] got = new float[vocab];
            int changed = 0;
            try (SlabKvStore store = new SlabKvStore(geometry(c), Long.MAX_VALUE); KvCache cache = new KvCache(store)) {
                pass.forward(cache, tokens, 0, PREFILL, PREFILL, null);
                for (int p = PREFILL; p < tokens.length; p++) {
                    float[][] small = new float[UNITS.length * 2][vocab];
                    for (int u = 0; u < UNITS.length; u++) {
                        for (OracleDecode.Choice choice : OracleDecode.Choice.values()) {
                            oracle.resetMass();
                            oracle.decode(cache, tokens[p], p + 1, UNITS[u], choice, 0, got);
                            assertEquals(0, oracle.sparseAttentions(), "a budget covering the context attends densely");
                            float[] full = got.clone();
                            oracle.decode(cache, tokens[p], 2 * CHUNK, UNITS[u], choice, c.layers(), got);
                            assertArrayEquals(full, got, "all layers dense");
                            oracle.decode(cache, tokens[p], 2 * CHUNK, UNITS[u], choice, 1, small[u * 2 + choice.ordinal()]);
                            assertEquals(p, cache.length(), "the oracle leaves the cache's length alone");
                            if (u == 0 && choice == OracleDecode.Choice.HEAD) {
                                dense = full; // compared with the forward pass below
                            } else {
                                assertArrayEquals(dense, full, "every oracle is dense at a budget covering the context");
                            }
                        }
                    }
                    float[] forward = new float[vocab];
                    pass.forward(cache, tokens, p, 1, 0, forward);
                    assertArrayEquals(forward, dense, "the oracle's dense decode is the forward pass's, position " + p);
                    for (float[] s : small) {
                        changed += java.util.Arrays.equals(s, forward) ? 0 : 1;
                    }
                }
            }
            assertEquals(8 * UNITS.length * 2, changed, "a budget of the sink and one of 12 chunks must change every decode");
        }
    }

    @Test
    void shouldMatchExactChunkScoringWhenChoosingWholeChunksPerGroup() {
        try (GgufFile f = GgufFile.open(tiny); LlamaModel model = LlamaModel.load(f)) {
            ModelConfig c = model.config();
            int vocab = c.vocabularySize();
            int[] tokens = ForwardPassReferenceTest.randomTokens(vocab, PREFILL + DECODE, 8);
            ForwardPass pass = new ForwardPass(model, pool, 64);
            OracleDecode oracle = new OracleDecode(model);
            int budget = 4 * CHUNK;
            float[] got = new float[vocab];
            float[] exact = new float[vocab];
            float[] dense = new float[vocab];
            double farthest = 0;
            try (SlabKvStore store = new SlabKvStore(geometry(c), Long.MAX_VALUE); KvCache cache = new KvCache(store)) {
                pass.forward(cache, tokens, 0, PREFILL, PREFILL, null);
                for (int p = PREFILL; p < tokens.length; p++) {
                    oracle.decode(cache, tokens[p], budget, CHUNK, OracleDecode.Choice.GROUP, 1, got);
                    oracle.decode(cache, tokens[p], p + 1, CHUNK, OracleDecode.Choice.GROUP, 1, dense);
                    pass.setSparse(new SparseAttention(true, budget, 0, 1, SparseAttention.Scoring.EXACT, 0));
                    pass.forward(cache, tokens, p, 1, 0, exact);
                    float max = 0;
                    for (int i = 0; i < vocab; i++) {
                        max = Math.max(max, Math.abs(exact[i]));
                        farthest = Math.max(farthest, Math.abs(exact[i] - dense[i]));
                    }
                    // The same positions attended; only the softmax is computed differently (rescaled dense weights).
                    assertArrayEquals(exact, got, 1e-5f * max, "position " + p);
                }
            }
            assertTrue(farthest > 1e-3, "the sparse decode must differ from dense, or the comparison shows nothing: " + farthest);
        }
    }

    @Test
    void shouldCaptureAtLeastAsMuchMassWhenUnitsAreFinerOrChosenPerHead() {
        try (GgufFile f = GgufFile.open(tiny); LlamaModel model = LlamaModel.load(f)) {
            ModelConfig c = model.config();
            int vocab = c.vocabularySize();
            int[] tokens = ForwardPassReferenceTest.randomTokens(vocab, PREFILL + DECODE, 9);
            ForwardPass pass = new ForwardPass(model, pool, 64);
            OracleDecode oracle = new OracleDecode(model);
            float[] logits = new float[vocab];
            int budget = 3 * CHUNK; // the sink and 32 positions of about 190 in the middle
            int denseLayers = c.layers() - 1; // earlier layers dense: every variant sees the same queries in the last
            double[] sum = new double[UNITS.length * 2];
            try (SlabKvStore store = new SlabKvStore(geometry(c), Long.MAX_VALUE); KvCache cache = new KvCache(store)) {
                pass.forward(cache, tokens, 0, PREFILL, PREFILL, null);
                for (int p = PREFILL; p < tokens.length; p++) {
                    double[] mass = new double[UNITS.length * 2];
                    for (int u = 0; u < UNITS.length; u++) {
                        for (OracleDecode.Choice choice : OracleDecode.Choice.values()) {
                            oracle.resetMass();
                            oracle.decode(cache, tokens[p], budget, UNITS[u], choice, denseLayers, logits);
                            assertEquals(c.heads(), oracle.sparseAttentions(), "one sparse layer, every query head");
                            mass[u * 2 + choice.ordinal()] = oracle.meanMassCaptured();
                            sum[u * 2 + choice.ordinal()] += oracle.meanMassCaptured();
                        }
                    }
                    for (int u = 0; u < UNITS.length; u++) {
                        for (int ch = 0; ch < 2; ch++) {
                            double m = mass[u * 2 + ch];
                            assertTrue(m > 0 && m <= 1 + 1e-6, "mass " + m);
                            if (u > 0) {
                                assertTrue(mass[(u - 1) * 2 + ch] >= m - 1e-6, "units of " + UNITS[u - 1] + " against " + UNITS[u]
                                        + ", choice " + ch + ", position " + p + ": " + java.util.Arrays.toString(mass));
                            }
                        }
                        assertTrue(mass[u * 2] >= mass[u * 2 + 1] - 1e-6, "per head against per group, units of " + UNITS[u] + ": "
                                + java.util.Arrays.toString(mass));
                    }
                    pass.forward(cache, tokens, p, 1, 0, logits);
                }
            }
            assertTrue(sum[0] > sum[(UNITS.length - 1) * 2] + 0.01 * DECODE,
                    "single positions must capture clearly more than whole chunks: " + java.util.Arrays.toString(sum));
        }
    }

    @Test
    void shouldChooseLargestAndBreakTiesToTheEarlierWhenChoosingTop() {
        double[] mass = {0.1, 0.5, 0.2, 0.5, 0.5, 0.0};
        boolean[] chosen = new boolean[6];
        double[] scratch = new double[6];
        OracleDecode.chooseTop(mass, 6, 2, chosen, scratch);
        assertArrayEquals(new boolean[] {false, true, false, true, false, false}, chosen);
        OracleDecode.chooseTop(mass, 6, 4, chosen, scratch);
        assertArrayEquals(new boolean[] {false, true, true, true, true, false}, chosen);
        OracleDecode.chooseTop(mass, 6, 0, chosen, scratch);
        assertArrayEquals(new boolean[6], chosen);
        OracleDecode.chooseTop(mass, 6, 9, chosen, scratch);
        assertArrayEquals(new boolean[] {true, true, true, true, true, true}, chosen);
    }

    @Test
    void shouldRejectUnitsThatDoNotDivideTheChunkWhenDecoding() {
        try (GgufFile f = GgufFile.open(tiny); LlamaModel model = LlamaModel.load(f);
             SlabKvStore store = new SlabKvStore(geometry(model.config()), Long.MAX_VALUE); KvCache cache = new KvCache(store)) {
            OracleDecode oracle = new OracleDecode(model);
            float[] logits = new float[model.config().vocabularySize()];
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> oracle.decode(cache, 1, 64, 3, OracleDecode.Choice.HEAD, 0, logits));
            assertTrue(e.getMessage().contains("3 positions do not divide chunks of 16"), e.getMessage());
            assertFalse(cache.length() > 0);
        }
    }
}
