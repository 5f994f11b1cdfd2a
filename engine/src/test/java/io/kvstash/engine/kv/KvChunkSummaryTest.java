package io.kvstash.engine.kv;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Key summaries (per-channel min, max, mean and variance of a chunk's keys, per layer, KV head and
 * sub-block): computed only when asked for, from the keys exactly as the scoring kernel reads them;
 * the Quest bound built from them is never below a real score, on every KV format and sub-block
 * size, and it is tight per channel.
 */
class KvChunkSummaryTest {
    static final int CHUNKS = 3;

    /** A cache of {@code CHUNKS} full chunks of seeded keys with per-channel offsets and a few outliers. */
    static KvCache filled(SlabKvStore store, long seed) {
        KvGeometry g = store.geometry();
        KvCache cache = new KvCache(store);
        Random r = new Random(seed);
        int positions = CHUNKS * g.chunkTokens();
        cache.reserve(positions);
        float[] k = new float[g.kvDim()];
        float[] v = new float[g.kvDim()];
        for (int p = 0; p < positions; p++) {
            for (int l = 0; l < g.layers(); l++) {
                for (int i = 0; i < k.length; i++) {
                    k[i] = (float) (r.nextGaussian() + (i % 5) - 2 + (r.nextInt(50) == 0 ? 8 * r.nextGaussian() : 0));
                    v[i] = (float) r.nextGaussian();
                }
                cache.chunk(p / g.chunkTokens()).write(l, p % g.chunkTokens(), k, 0, v, 0);
            }
        }
        cache.setLength(positions);
        return cache;
    }

    @ParameterizedTest
    @EnumSource(KvFormat.class)
    void shouldBoundEveryKeyScoreWhenSummarised(KvFormat format) {
        KvGeometry g = new KvGeometry(2, 3, 48, 64, format);
        try (SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE); KvCache cache = filled(store, 5)) {
            Random r = new Random(6);
            float[] q = new float[g.headDim()];
            float[] scores = new float[g.chunkTokens()];
            float[] scratch = new float[KvChunk.scratchFloats(g)];
            float[] keys = new float[KvChunk.summaryScratchFloats(g)];
            int checked = 0;
            for (int blockTokens : new int[] {64, 16}) {
                for (int ch = 0; ch < CHUNKS; ch++) {
                    KvChunk chunk = cache.chunk(ch);
                    if (blockTokens == 64) {
                        assertFalse(chunk.summarised(), "chunk " + ch + ": sealing must not compute a summary (it is lazy)");
                    }
                    chunk.summarise(blockTokens, keys);
                    assertEquals(blockTokens, chunk.summaryTokens());
                    assertEquals(64 / blockTokens, chunk.summaryBlocks());
                    for (int l = 0; l < g.layers(); l++) {
                        for (int h = 0; h < g.kvHeads(); h++) {
                            for (int trial = 0; trial < 40; trial++) {
                                double magnitude = 0;
                                for (int i = 0; i < q.length; i++) {
                                    q[i] = (float) (r.nextGaussian() * (trial % 4 == 0 ? 10 : 1));
                                    magnitude += Math.abs(q[i]) * 12;
                                }
                                chunk.keyScores(l, h, q, 0, g.chunkTokens(), 1f, scores, 0, scratch);
                                float chunkMax = Float.NEGATIVE_INFINITY;
                                for (int b = 0; b < chunk.summaryBlocks(); b++) {
                                    float max = Float.NEGATIVE_INFINITY;
                                    for (int t = b * blockTokens; t < (b + 1) * blockTokens; t++) {
                                        max = Math.max(max, scores[t]);
                                    }
                                    chunkMax = Math.max(chunkMax, max);
                                    float bound = chunk.keyScoreBound(l, h, b, q, 0);
                                    // Float sums in another order than the kernel's: allow their rounding only.
                                    assertTrue(bound >= max - 1e-5 * magnitude, format + " chunk " + ch + " layer " + l + " head " + h
                                            + " sub-block " + b + "/" + blockTokens + ": bound " + bound + " below the real maximum score " + max);
                                    // The Gaussian estimate never claims more than the bound allows.
                                    assertTrue(chunk.keyLogMeanExp(l, h, b, q, 0, 0.5f) <= 0.5f * bound, format + " sub-block " + b);
                                    checked++;
                                }
                                assertTrue(chunk.keyScoreBound(l, h, q, 0) >= chunkMax - 1e-5 * magnitude, format + " whole chunk");
                            }
                            // Per channel, the bound of a one-hot query is the extreme key of that channel itself.
                            for (int i = 0; i < q.length; i++) {
                                java.util.Arrays.fill(q, 0f);
                                for (float sign : new float[] {1f, -1f}) {
                                    q[i] = sign;
                                    chunk.keyScores(l, h, q, 0, g.chunkTokens(), 1f, scores, 0, scratch);
                                    for (int b = 0; b < chunk.summaryBlocks(); b++) {
                                        float max = Float.NEGATIVE_INFINITY;
                                        double sum = 0;
                                        for (int t = b * blockTokens; t < (b + 1) * blockTokens; t++) {
                                            max = Math.max(max, scores[t]);
                                            sum += scores[t];
                                        }
                                        assertEquals(max, chunk.keyScoreBound(l, h, b, q, 0), format + " channel " + i + " sign " + sign);
                                        assertEquals(sum / blockTokens, chunk.keyMeanScore(l, h, b, q, 0), 1e-4,
                                                format + " mean of channel " + i + " sub-block " + b);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            assertEquals(CHUNKS * g.layers() * g.kvHeads() * 40 * (1 + 4), checked);
        }
    }

    @ParameterizedTest
    @EnumSource(KvFormat.class)
    void shouldDecodeKeysAsTheScoringKernelReadsThem(KvFormat format) {
        KvGeometry g = new KvGeometry(2, 2, 48, 64, format);
        try (SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE); KvCache cache = filled(store, 17)) {
            KvChunk chunk = cache.chunk(1);
            float[] keys = new float[KvChunk.summaryScratchFloats(g)];
            float[] oneHot = new float[g.headDim()];
            float[] column = new float[g.chunkTokens()];
            float[] scratch = new float[KvChunk.scratchFloats(g)];
            for (int l = 0; l < g.layers(); l++) {
                for (int h = 0; h < g.kvHeads(); h++) {
                    chunk.decodeKeys(l, h, keys);
                    for (int c = 0; c < g.headDim(); c++) {
                        oneHot[c] = 1f;
                        chunk.keyScores(l, h, oneHot, 0, g.chunkTokens(), 1f, column, 0, scratch);
                        oneHot[c] = 0f;
                        for (int t = 0; t < g.chunkTokens(); t++) {
                            assertEquals(column[t], keys[c * g.chunkTokens() + t], format + " layer " + l + " head " + h + " channel " + c
                                    + " token " + t);
                        }
                    }
                }
            }
        }
    }

    @org.junit.jupiter.api.Test
    void shouldEstimateExactMassWhenKeysOfSubBlockAreEqual() {
        // Identical keys within each 16-token sub-block: zero variance, so the Gaussian estimate is exact.
        KvGeometry g = new KvGeometry(1, 1, 8, 64, KvFormat.F32);
        try (SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE); KvCache cache = new KvCache(store)) {
            cache.reserve(64);
            Random r = new Random(4);
            float[][] blockKey = new float[4][8];
            for (float[] k : blockKey) {
                for (int i = 0; i < k.length; i++) {
                    k[i] = (float) r.nextGaussian();
                }
            }
            for (int p = 0; p < 64; p++) {
                cache.chunk(0).write(0, p, blockKey[p / 16], 0, new float[8], 0);
            }
            cache.setLength(64);
            KvChunk chunk = cache.chunk(0);
            chunk.summarise(16, new float[KvChunk.summaryScratchFloats(g)]);
            float[] q = new float[8];
            for (int i = 0; i < 8; i++) {
                q[i] = (float) r.nextGaussian();
            }
            for (int b = 0; b < 4; b++) {
                double dot = 0;
                for (int i = 0; i < 8; i++) {
                    dot += q[i] * blockKey[b][i];
                }
                assertEquals(0.3 * dot, chunk.keyLogMeanExp(0, 0, b, q, 0, 0.3f), 1e-5, "sub-block " + b);
            }
        }
    }

    /**
     * The key sketch: per channel and group of 32 positions at most 2^bits distinct keys, each within
     * half a quantization step of the real key (the step being the group's range over 2^bits − 1, with
     * the halves' rounding), and the sketch's scores are linear in the query: those of a random query
     * equal the sum of its channels times the sketched keys a one-hot query reads. A parked copy keeps
     * the sketch. Chunks of 64 positions get 2-bit codes, of 96 (a multiple of 32 only) 4-bit ones.
     */
    @ParameterizedTest
    @EnumSource(KvFormat.class)
    void shouldSketchEveryKeyWithinHalfAStepWhenSummarisedAsSketch(KvFormat format) {
        for (int c : format == KvFormat.KIVI2 ? new int[] {64} : new int[] {64, 96}) {
            KvGeometry g = new KvGeometry(2, 3, 48, c, format);
            int bits = c % 64 == 0 ? 2 : 4;
            assertEquals(bits == 2 ? KvFormat.KIVI2 : KvFormat.KIVI4, KvChunk.sketchFormat(g));
            assertEquals((long) g.layers() * g.kvHeads() * ChunkLayout.of(g, KvChunk.sketchFormat(g)).blockBytes(false),
                    KvChunk.summaryBytes(g, KvChunk.SKETCH));
            try (SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE); KvCache cache = filled(store, 23)) {
                Random r = new Random(24);
                float[] keys = new float[KvChunk.summaryScratchFloats(g)];
                float[] scratch = new float[KvChunk.scratchFloats(g)];
                float[] q = new float[g.headDim()];
                float[] sketched = new float[g.headDim() * c];
                float[] scores = new float[c];
                for (int ch = 0; ch < CHUNKS; ch++) {
                    KvChunk chunk = cache.chunk(ch);
                    chunk.summarise(KvChunk.SKETCH, keys);
                    assertTrue(chunk.summarised());
                    assertEquals(KvChunk.SKETCH, chunk.summaryTokens());
                    assertEquals(0, chunk.summaryBlocks(), "a sketch has no statistics sub-blocks");
                    assertThrows(IllegalStateException.class, () -> chunk.keyScoreBound(0, 0, q, 0));
                    KvChunk parked = chunk.parkedCopy((keysToFetch, into, from, to) -> { }, "key");
                    for (int l = 0; l < g.layers(); l++) {
                        for (int h = 0; h < g.kvHeads(); h++) {
                            chunk.decodeKeys(l, h, keys);
                            for (int i = 0; i < q.length; i++) {
                                java.util.Arrays.fill(q, 0f);
                                q[i] = 1f;
                                chunk.sketchScores(l, h, q, 0, 1f, sketched, i * c, scratch);
                                for (int g0 = 0; g0 < c; g0 += KvFormat.GROUP) {
                                    float min = Float.POSITIVE_INFINITY;
                                    float max = Float.NEGATIVE_INFINITY;
                                    java.util.Set<Float> distinct = new java.util.HashSet<>();
                                    for (int t = g0; t < g0 + KvFormat.GROUP; t++) {
                                        min = Math.min(min, keys[i * c + t]);
                                        max = Math.max(max, keys[i * c + t]);
                                        distinct.add(sketched[i * c + t]);
                                    }
                                    assertTrue(distinct.size() <= 1 << bits, format + " channel " + i + ": " + distinct.size() + " levels");
                                    double halfStep = 0.5 * (max - min) / ((1 << bits) - 1) * 1.01 + 1e-3 * Math.max(Math.abs(min), Math.abs(max));
                                    for (int t = g0; t < g0 + KvFormat.GROUP; t++) {
                                        assertEquals(keys[i * c + t], sketched[i * c + t], halfStep, format + "/" + c + " chunk " + ch + " layer " + l
                                                + " head " + h + " channel " + i + " position " + t);
                                    }
                                }
                            }
                            for (int i = 0; i < q.length; i++) {
                                q[i] = (float) r.nextGaussian();
                            }
                            chunk.sketchScores(l, h, q, 0, 0.5f, scores, 0, scratch);
                            for (int t = 0; t < c; t++) {
                                double expected = 0;
                                double magnitude = 0;
                                for (int i = 0; i < q.length; i++) {
                                    expected += q[i] * sketched[i * c + t];
                                    magnitude += Math.abs(q[i] * sketched[i * c + t]);
                                }
                                assertEquals(0.5 * expected, scores[t], 1e-5 * magnitude + 1e-6, format + " position " + t);
                            }
                            float[] again = new float[c];
                            parked.sketchScores(l, h, q, 0, 0.5f, again, 0, scratch);
                            assertTrue(java.util.Arrays.equals(scores, again), "a parked copy scores from the same sketch");
                        }
                    }
                }
            }
        }
    }

    @org.junit.jupiter.api.Test
    void shouldRejectSketchWhenChunksAreNotAMultipleOf32() {
        KvGeometry g = new KvGeometry(1, 1, 8, 48, KvFormat.F16);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> KvChunk.sketchFormat(g));
        assertTrue(e.getMessage().contains("multiple of 32") && e.getMessage().contains("48"), e.getMessage());
    }

    @org.junit.jupiter.api.Test
    void shouldRejectSubBlocksThatDoNotDivideTheChunk() {
        KvGeometry g = new KvGeometry(1, 1, 8, 64, KvFormat.F16);
        try (SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE); KvCache cache = filled(store, 2)) {
            float[] keys = new float[KvChunk.summaryScratchFloats(g)];
            assertThrows(IllegalArgumentException.class, () -> cache.chunk(0).summarise(24, keys));
            assertThrows(IllegalArgumentException.class, () -> cache.chunk(0).summarise(0, keys));
            assertFalse(cache.chunk(0).summarised());
        }
    }

    @ParameterizedTest
    @EnumSource(KvFormat.class)
    void shouldForgetSummaryWhenStoreHandsChunkOutAgain(KvFormat format) {
        KvGeometry g = new KvGeometry(1, 1, 16, 64, format);
        try (SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE)) {
            KvCache cache = filled(store, 9);
            KvChunk first = cache.chunk(CHUNKS - 1); // released last, so handed out first
            first.summarise();
            assertTrue(first.summarised());
            cache.close();
            KvChunk again = store.allocateSealed();
            assertSame(first, again, "the store reuses the freed chunk (LIFO)");
            assertFalse(again.summarised(), "a reused chunk must not keep the old bytes' summary");
            assertThrows(IllegalStateException.class, () -> again.keyScoreBound(0, 0, new float[16], 0));
            store.release(again);
        }
    }

    @ParameterizedTest
    @EnumSource(KvFormat.class)
    void shouldComputeSameSummaryWhenChunkIsReadBack(KvFormat format) {
        KvGeometry g = new KvGeometry(2, 2, 48, 64, format);
        try (SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE); KvCache cache = filled(store, 12);
             KvCache copy = new KvCache(store)) {
            // As the warm tier restores a chunk: bytes copied into a fresh sealed chunk, appended.
            KvChunk original = cache.chunk(1);
            KvChunk restored = store.allocateSealed();
            java.lang.foreign.MemorySegment.copy(original.data(), 0, restored.data(), 0, original.data().byteSize());
            copy.appendFull(restored);
            assertFalse(restored.summarised(), "appending computes nothing: sparse decode summarises when it needs to");
            original.summarise();
            restored.summarise();
            Random r = new Random(3);
            float[] q = new float[g.headDim()];
            for (int trial = 0; trial < 20; trial++) {
                for (int i = 0; i < q.length; i++) {
                    q[i] = (float) r.nextGaussian();
                }
                int l = trial % 2;
                int h = trial / 2 % 2;
                assertEquals(original.keyScoreBound(l, h, q, 0), restored.keyScoreBound(l, h, q, 0));
            }
        }
    }
}
