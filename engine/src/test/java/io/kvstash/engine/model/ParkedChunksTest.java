package io.kvstash.engine.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.gguf.TinyModels;
import io.kvstash.engine.kernel.ComputePool;
import io.kvstash.engine.kv.ChunkFetcher;
import io.kvstash.engine.kv.ChunkUnavailableException;
import io.kvstash.engine.kv.KvCache;
import io.kvstash.engine.kv.KvChunk;
import io.kvstash.engine.kv.KvFormat;
import io.kvstash.engine.kv.KvGeometry;
import io.kvstash.engine.kv.SlabKvStore;
import io.kvstash.engine.kv.TransientChunks;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Decode over a cache whose chunks are parked (bodies back in the store, read back through a
 * {@link ChunkFetcher} into transient slots) gives the same logits bit for bit as over the same
 * cache with every chunk resident, dense and sparse, with slots too few to keep every chunk, with
 * and without prefetch, on every KV format; parking frees the store's memory.
 */
class ParkedChunksTest {
    static final int CHUNK = 64; // KIVI2 needs chunks of a multiple of 64 tokens
    static final int PREFILL = 600; // 9 full chunks and a tail; decoding seals chunk 9
    static final int DECODE = 48;
    static final SparseAttention SPARSE = new SparseAttention(true, 4 * CHUNK, 0, 0);

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

    /** Chunk bodies kept on the heap, as a warm tier would hold them. */
    static final class HeapTier implements ChunkFetcher {
        final Map<Object, byte[]> bodies = new ConcurrentHashMap<>();
        final AtomicInteger fetched = new AtomicInteger();

        void put(Object key, KvChunk chunk) {
            bodies.put(key, chunk.data().toArray(ValueLayout.JAVA_BYTE));
        }

        @Override
        public void fetch(Object[] keys, MemorySegment[] into, int from, int to) {
            for (int i = from; i < to; i++) {
                byte[] b = bodies.get(keys[i]);
                if (b == null) {
                    throw new ChunkUnavailableException("no chunk " + keys[i]);
                }
                MemorySegment.copy(b, 0, into[i], ValueLayout.JAVA_BYTE, 0, b.length);
                fetched.incrementAndGet();
            }
        }
    }

    /**
     * Logits of the {@code DECODE} tokens decoded one at a time after the prefill; with {@code slots > 0}
     * every full chunk but the sink is parked after the prefill and as soon as it is sealed.
     */
    static float[] decode(LlamaModel model, KvFormat format, SparseAttention sparse, int slots, boolean prefetch, HeapTier tier) {
        ModelConfig c = model.config();
        int vocab = c.vocabularySize();
        int[] tokens = ForwardPassReferenceTest.randomTokens(vocab, PREFILL + DECODE, 9);
        float[] out = new float[DECODE * vocab];
        ForwardPass pass = new ForwardPass(model, pool, 64);
        pass.setSparse(sparse);
        KvGeometry g = new KvGeometry(c.layers(), c.kvHeads(), c.headDim(), CHUNK, format);
        try (SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE); KvCache cache = new KvCache(store)) {
            pass.forward(cache, tokens, 0, PREFILL, PREFILL, null);
            if (slots > 0) {
                cache.useTransientChunks(new TransientChunks(g, slots, prefetch));
                long before = store.bytesInUse();
                parkNew(cache, tier, sparse);
                assertEquals(before - (long) (cache.fullChunks() - 1) * g.chunkBytes(), store.bytesInUse(), "parked bodies go back to the store");
                assertEquals(cache.fullChunks() - 1, cache.parkedChunks());
            }
            float[] row = new float[vocab];
            for (int i = 0; i < DECODE; i++) {
                pass.forward(cache, tokens, PREFILL + i, 1, 0, row);
                System.arraycopy(row, 0, out, i * vocab, vocab);
                if (slots > 0) {
                    parkNew(cache, tier, sparse);
                }
            }
            if (slots > 0) {
                assertEquals(cache.fullChunks() - 1, cache.parkedChunks());
                assertTrue(cache.transientChunks().stats().fetched() > 0);
            }
        }
        return out;
    }

    @ParameterizedTest
    @EnumSource(KvFormat.class)
    void shouldDecodeBitForBitWhenChunksAreParked(KvFormat format) {
        try (GgufFile f = GgufFile.open(tiny); LlamaModel model = LlamaModel.load(f)) {
            float[] sparse = decode(model, format, SPARSE, 0, false, null);
            // Sparse: a layer needs at most 3 chosen chunks per KV head (sink and tail stay resident): 6 slots.
            for (int slots : new int[] {6, 9}) {
                for (boolean prefetch : new boolean[] {false, true}) {
                    HeapTier tier = new HeapTier();
                    assertArrayEquals(sparse, decode(model, format, SPARSE, slots, prefetch, tier),
                            format + " sparse, " + slots + " slots, prefetch " + prefetch);
                    // 9 chunks get parked: more reads than that means slots were reused for other chunks.
                    assertTrue(slots == 9 || tier.fetched.get() > 9, "reads with " + slots + " slots: " + tier.fetched.get());
                }
            }
            float[] dense = decode(model, format, SparseAttention.OFF, 0, false, null);
            assertFalse(java.util.Arrays.equals(dense, sparse), "the sparse budget must change decode, or this test proves nothing");
            assertArrayEquals(dense, decode(model, format, SparseAttention.OFF, 9, true, new HeapTier()), format + " dense");
        }
    }

    @Test
    void shouldReadEachChunkOncePerStepWhenSlotsHoldThemAll() {
        try (GgufFile f = GgufFile.open(tiny); LlamaModel model = LlamaModel.load(f)) {
            HeapTier tier = new HeapTier();
            decode(model, KvFormat.Q8, SparseAttention.OFF, 9, false, tier);
            // 8 chunks parked after the prefill, read in the first step and kept; chunk 9 parked once sealed, read once.
            assertEquals(9, tier.fetched.get());
        }
    }

    // Attention in rounds: 12 full chunks and a tail of 40 after the prefill; a 16-token prefill step
    // (dense, several tokens per layer), then decoding, which seals chunk 12 (parked in turn).
    static final int ROUNDS_PREFILL = 12 * CHUNK + 40;
    static final int ROUNDS_STEP = 16;
    static final int ROUNDS_DECODE = 12;
    // Dense first layer, sparse after it: a layer's KV heads together pick up to 6 parked chunks.
    static final SparseAttention ROUNDS_SPARSE = new SparseAttention(true, 4 * CHUNK, 0, 1);
    /**
     * Rounds sum a softmax's parts in another order and rescale them by exp(m_old − m_new), each a
     * float rounding (about 6e-8 relative) per part: the attention outputs differ from one pass by a
     * few ulps, and through 3 layers the logits by well under 1e-5 of their largest magnitude (the
     * largest seen over every format here is printed by the test).
     */
    static final double ROUNDS_TOLERANCE = 1e-5;

    /**
     * Logits of the prefill step's tokens, then of each decoded token ({@code ROUNDS_STEP + ROUNDS_DECODE}
     * rows); with {@code slots > 0} every full chunk but the sink is parked after the prefill and as soon as it is sealed.
     */
    static float[] roundsLogits(LlamaModel model, KvFormat format, SparseAttention sparse, int slots, HeapTier tier) {
        ModelConfig c = model.config();
        int vocab = c.vocabularySize();
        int[] tokens = ForwardPassReferenceTest.randomTokens(vocab, ROUNDS_PREFILL + ROUNDS_STEP + ROUNDS_DECODE, 17);
        float[] out = new float[(ROUNDS_STEP + ROUNDS_DECODE) * vocab];
        ForwardPass pass = new ForwardPass(model, pool, 64);
        pass.setSparse(sparse);
        KvGeometry g = new KvGeometry(c.layers(), c.kvHeads(), c.headDim(), CHUNK, format);
        try (SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE); KvCache cache = new KvCache(store)) {
            pass.forward(cache, tokens, 0, ROUNDS_PREFILL, ROUNDS_PREFILL, null);
            if (slots > 0) {
                cache.useTransientChunks(new TransientChunks(g, slots, false));
                parkNew(cache, tier, sparse);
                assertEquals(11, cache.parkedChunks());
            }
            pass.forward(cache, tokens, ROUNDS_PREFILL, ROUNDS_STEP, 0, out);
            float[] row = new float[vocab];
            for (int i = 0; i < ROUNDS_DECODE; i++) {
                pass.forward(cache, tokens, ROUNDS_PREFILL + ROUNDS_STEP + i, 1, 0, row);
                System.arraycopy(row, 0, out, (ROUNDS_STEP + i) * vocab, vocab);
                if (slots > 0) {
                    parkNew(cache, tier, sparse);
                }
            }
            assertEquals(13, cache.fullChunks(), "decoding sealed chunk 12");
            if (slots > 0) {
                assertEquals(12, cache.parkedChunks());
            }
        }
        return out;
    }

    private static void parkNew(KvCache cache, HeapTier tier, SparseAttention sparse) {
        for (int ch = 1; ch < cache.fullChunks(); ch++) {
            if (!cache.chunk(ch).parked()) {
                tier.put(ch, cache.chunk(ch));
                cache.park(ch, tier, ch, sparse.summaryTokens(CHUNK));
            }
        }
    }

    /** Largest |a − b| over a row, relative to the row's largest |a|; fails when the rows' argmax differ. */
    private static double assertCloseRows(float[] expected, float[] actual, int vocab, String what) {
        double worst = 0;
        for (int r = 0; r < expected.length / vocab; r++) {
            double scale = 0;
            double diff = 0;
            for (int i = r * vocab; i < (r + 1) * vocab; i++) {
                scale = Math.max(scale, Math.abs(expected[i]));
                diff = Math.max(diff, Math.abs(expected[i] - actual[i]));
            }
            worst = Math.max(worst, diff / scale);
            assertTrue(diff <= ROUNDS_TOLERANCE * scale, what + ", row " + r + ": logits differ by " + diff + " (largest " + scale + ")");
            assertEquals(argmax(expected, r * vocab, vocab), argmax(actual, r * vocab, vocab), what + ", row " + r + ": greedy token");
        }
        return worst;
    }

    private static int argmax(float[] x, int off, int n) {
        int best = off;
        for (int i = off + 1; i < off + n; i++) {
            if (x[i] > x[best]) {
                best = i;
            }
        }
        return best - off;
    }

    @ParameterizedTest
    @EnumSource(KvFormat.class)
    void shouldMatchResidentLogitsWhenLayersAttendInRounds(KvFormat format) {
        try (GgufFile f = GgufFile.open(tiny); LlamaModel model = LlamaModel.load(f)) {
            int vocab = model.config().vocabularySize();
            double worst = 0;
            for (SparseAttention sparse : new SparseAttention[] {SparseAttention.OFF, ROUNDS_SPARSE}) {
                float[] resident = roundsLogits(model, format, sparse, 0, null);
                for (int slots : new int[] {1, 2, 3}) {
                    HeapTier tier = new HeapTier();
                    float[] rounds = roundsLogits(model, format, sparse, slots, tier);
                    worst = Math.max(worst, assertCloseRows(resident, rounds, vocab,
                            format + (sparse.enabled() ? " sparse" : " dense") + ", " + slots + " slots"));
                    // 12 chunks get parked; with so few slots every layer reads most of them again.
                    assertTrue(tier.fetched.get() > 3 * 12, "reads with " + slots + " slots: " + tier.fetched.get());
                }
            }
            float[] dense = roundsLogits(model, format, SparseAttention.OFF, 0, null);
            float[] sparse = roundsLogits(model, format, ROUNDS_SPARSE, 0, null);
            assertFalse(java.util.Arrays.equals(java.util.Arrays.copyOfRange(dense, ROUNDS_STEP * vocab, dense.length),
                    java.util.Arrays.copyOfRange(sparse, ROUNDS_STEP * vocab, sparse.length)),
                    "the sparse budget must change decode, or this test proves nothing");
            System.out.printf("%s: largest relative logit difference in rounds %.2e%n", format, worst);
        }
    }

    @Test
    void shouldAttendInRoundsWhenLayerNeedsMoreChunksThanSlots() {
        // Before rounds this failed: "layer 0 needs 8 parked chunks at once, but there are 4 transient slots".
        try (GgufFile f = GgufFile.open(tiny); LlamaModel model = LlamaModel.load(f)) {
            float[] resident = decode(model, KvFormat.F16, SparseAttention.OFF, 0, false, null);
            for (boolean prefetch : new boolean[] {false, true}) {
                HeapTier tier = new HeapTier();
                float[] rounds = decode(model, KvFormat.F16, SparseAttention.OFF, 4, prefetch, tier);
                assertCloseRows(resident, rounds, model.config().vocabularySize(), "F16 dense, 4 slots, prefetch " + prefetch);
                assertTrue(tier.fetched.get() > 3 * 9, "each layer reads chunks again: " + tier.fetched.get());
            }
        }
    }

    @Test
    void shouldAttendInRoundsForOneSequenceOfABatchedStep() {
        // Two sequences decode in one step: one with every chunk resident (one pass), one with 11 parked
        // chunks and 2 slots (rounds); each gets the logits it gets alone with every chunk resident.
        try (GgufFile f = GgufFile.open(tiny); LlamaModel model = LlamaModel.load(f)) {
            ModelConfig c = model.config();
            int vocab = c.vocabularySize();
            KvGeometry g = new KvGeometry(c.layers(), c.kvHeads(), c.headDim(), CHUNK, KvFormat.KIVI4);
            int[] a = ForwardPassReferenceTest.randomTokens(vocab, ROUNDS_PREFILL + 4, 21);
            int[] b = ForwardPassReferenceTest.randomTokens(vocab, ROUNDS_PREFILL + 4, 22);
            for (SparseAttention sparse : new SparseAttention[] {SparseAttention.OFF, ROUNDS_SPARSE}) {
                ForwardPass pass = new ForwardPass(model, pool, 64);
                pass.setSparse(sparse);
                float[] aloneA = new float[4 * vocab];
                float[] aloneB = new float[4 * vocab];
                float[] batched = new float[2 * 4 * vocab];
                HeapTier tier = new HeapTier();
                try (SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE); KvCache ca = new KvCache(store); KvCache cb = new KvCache(store);
                     KvCache ra = new KvCache(store); KvCache rb = new KvCache(store)) {
                    pass.forward(ca, a, 0, ROUNDS_PREFILL, ROUNDS_PREFILL, null);
                    pass.forward(cb, b, 0, ROUNDS_PREFILL, ROUNDS_PREFILL, null);
                    pass.forward(ra, a, 0, ROUNDS_PREFILL, ROUNDS_PREFILL, null);
                    pass.forward(rb, b, 0, ROUNDS_PREFILL, ROUNDS_PREFILL, null);
                    cb.useTransientChunks(new TransientChunks(g, 2, false));
                    parkNew(cb, tier, sparse);
                    float[] row = new float[vocab];
                    int[] both = new int[2];
                    for (int i = 0; i < 4; i++) {
                        pass.forward(ra, a, ROUNDS_PREFILL + i, 1, 0, row);
                        System.arraycopy(row, 0, aloneA, i * vocab, vocab);
                        pass.forward(rb, b, ROUNDS_PREFILL + i, 1, 0, row);
                        System.arraycopy(row, 0, aloneB, i * vocab, vocab);
                        both[0] = a[ROUNDS_PREFILL + i];
                        both[1] = b[ROUNDS_PREFILL + i];
                        float[] rows = new float[2 * vocab];
                        pass.step(new KvCache[] {ca, cb}, both, 0, 2, new int[] {0, 1}, 2, rows);
                        System.arraycopy(rows, 0, batched, i * vocab, vocab);
                        System.arraycopy(rows, vocab, batched, (4 + i) * vocab, vocab);
                    }
                }
                String what = sparse.enabled() ? "sparse" : "dense";
                assertArrayEquals(aloneA, java.util.Arrays.copyOfRange(batched, 0, 4 * vocab), what + ": the resident sequence attends in one pass");
                assertCloseRows(aloneB, java.util.Arrays.copyOfRange(batched, 4 * vocab, 8 * vocab), vocab, what + ": the parked sequence in rounds");
                assertTrue(tier.fetched.get() > 4 * 11, "rounds read chunks again: " + tier.fetched.get());
            }
        }
    }

    @Test
    void shouldFailClearlyWhenExactScoringNeedsMoreChunksThanSlots() {
        // Exact scoring (a CLI reference) reads every chunk's keys to choose: it cannot run in rounds.
        SparseAttention exact = new SparseAttention(true, 4 * CHUNK, 0, 0, SparseAttention.Scoring.EXACT, 0);
        try (GgufFile f = GgufFile.open(tiny); LlamaModel model = LlamaModel.load(f)) {
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> decode(model, KvFormat.F16, exact, 2, false, new HeapTier()));
            assertTrue(e.getMessage().contains("layer 0 needs 8 parked chunks at once, but there are 2 transient slots, and exact chunk scoring"),
                    e.getMessage());
        }
    }

    @Test
    void shouldReportUnavailableChunkWhenRoundsReadIt() {
        try (GgufFile f = GgufFile.open(tiny); LlamaModel model = LlamaModel.load(f)) {
            ModelConfig c = model.config();
            KvGeometry g = new KvGeometry(c.layers(), c.kvHeads(), c.headDim(), CHUNK, KvFormat.Q8);
            int[] tokens = ForwardPassReferenceTest.randomTokens(c.vocabularySize(), 6 * CHUNK + 1, 5);
            ForwardPass pass = new ForwardPass(model, pool, 64);
            HeapTier tier = new HeapTier();
            try (SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE); KvCache cache = new KvCache(store)) {
                pass.forward(cache, tokens, 0, 6 * CHUNK, 6 * CHUNK, null);
                cache.useTransientChunks(new TransientChunks(g, 2, false));
                parkNew(cache, tier, SparseAttention.OFF);
                tier.bodies.remove(4); // lost by the tier: the third round reads it
                ChunkUnavailableException e = assertThrows(ChunkUnavailableException.class,
                        () -> pass.forward(cache, tokens, 6 * CHUNK, 1, 0, new float[c.vocabularySize()]));
                assertTrue(e.getMessage().contains("no chunk 4"), e.getMessage());
                assertEquals(6 * CHUNK, cache.length(), "the failed step leaves the length");
            }
        }
    }

    @Test
    void shouldReportUnavailableChunkWhenTierLostIt() {
        try (GgufFile f = GgufFile.open(tiny); LlamaModel model = LlamaModel.load(f)) {
            ModelConfig c = model.config();
            KvGeometry g = new KvGeometry(c.layers(), c.kvHeads(), c.headDim(), CHUNK, KvFormat.F32);
            int[] tokens = ForwardPassReferenceTest.randomTokens(c.vocabularySize(), 2 * CHUNK + 1, 3);
            ForwardPass pass = new ForwardPass(model, pool, 64);
            HeapTier tier = new HeapTier();
            try (SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE); KvCache cache = new KvCache(store)) {
                pass.forward(cache, tokens, 0, 2 * CHUNK, 2 * CHUNK, null);
                cache.useTransientChunks(new TransientChunks(g, 2, false));
                cache.park(1, tier, "gone");
                assertThrows(IllegalStateException.class, () -> cache.park(1, tier, "again"));
                assertThrows(IllegalArgumentException.class, () -> cache.park(2, tier, "tail"));
                assertThrows(IllegalArgumentException.class, () -> cache.park(0, tier, "sink"), "the sink stays resident");
                ChunkUnavailableException e = assertThrows(ChunkUnavailableException.class,
                        () -> pass.forward(cache, tokens, 2 * CHUNK, 1, 1, null));
                assertTrue(e.getMessage().contains("gone"), e.getMessage());
                assertThrows(IllegalStateException.class, () -> cache.shift(1, 1, null));
                assertThrows(IllegalStateException.class, () -> cache.useTransientChunks(null), "parked chunks need somewhere to be read into");
                KvGeometry other = new KvGeometry(c.layers(), c.kvHeads(), c.headDim(), CHUNK, KvFormat.F16);
                try (TransientChunks wrong = new TransientChunks(other, 2, false)) {
                    assertThrows(IllegalArgumentException.class, () -> cache.useTransientChunks(wrong));
                }
            }
            assertEquals(0, tier.fetched.get());
        }
    }
}
