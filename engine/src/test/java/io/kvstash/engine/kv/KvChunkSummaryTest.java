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
 * Key summaries (per-channel min and max of a chunk's keys, per layer and KV head): the Quest bound
 * built from them is never below a real score, on every KV format, and it is tight per channel.
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
    void shouldBoundEveryKeyScoreWhenChunkIsSealed(KvFormat format) {
        KvGeometry g = new KvGeometry(2, 3, 48, 64, format);
        try (SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE); KvCache cache = filled(store, 5)) {
            Random r = new Random(6);
            float[] q = new float[g.headDim()];
            float[] scores = new float[g.chunkTokens()];
            float[] scratch = new float[KvChunk.scratchFloats(g)];
            int checked = 0;
            for (int ch = 0; ch < CHUNKS; ch++) {
                KvChunk chunk = cache.chunk(ch);
                assertTrue(chunk.summarised(), "chunk " + ch + " sealed without a summary");
                for (int l = 0; l < g.layers(); l++) {
                    for (int h = 0; h < g.kvHeads(); h++) {
                        for (int trial = 0; trial < 40; trial++) {
                            double magnitude = 0;
                            for (int i = 0; i < q.length; i++) {
                                q[i] = (float) (r.nextGaussian() * (trial % 4 == 0 ? 10 : 1));
                                magnitude += Math.abs(q[i]) * 12;
                            }
                            chunk.keyScores(l, h, q, 0, g.chunkTokens(), 1f, scores, 0, scratch);
                            float max = Float.NEGATIVE_INFINITY;
                            for (float s : scores) {
                                max = Math.max(max, s);
                            }
                            float bound = chunk.keyScoreBound(l, h, q, 0);
                            // Float sums in another order than the kernel's: allow their rounding only.
                            assertTrue(bound >= max - 1e-5 * magnitude, format + " chunk " + ch + " layer " + l + " head " + h
                                    + ": bound " + bound + " below the real maximum score " + max);
                            checked++;
                        }
                        // Per channel, the bound of a one-hot query is the extreme key of that channel itself.
                        for (int i = 0; i < q.length; i++) {
                            java.util.Arrays.fill(q, 0f);
                            for (float sign : new float[] {1f, -1f}) {
                                q[i] = sign;
                                chunk.keyScores(l, h, q, 0, g.chunkTokens(), 1f, scores, 0, scratch);
                                float max = Float.NEGATIVE_INFINITY;
                                for (float s : scores) {
                                    max = Math.max(max, s);
                                }
                                assertEquals(max, chunk.keyScoreBound(l, h, q, 0), format + " channel " + i + " sign " + sign);
                            }
                        }
                    }
                }
            }
            assertEquals(CHUNKS * g.layers() * g.kvHeads() * 40, checked);
        }
    }

    @ParameterizedTest
    @EnumSource(KvFormat.class)
    void shouldForgetSummaryWhenStoreHandsChunkOutAgain(KvFormat format) {
        KvGeometry g = new KvGeometry(1, 1, 16, 64, format);
        try (SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE)) {
            KvCache cache = filled(store, 9);
            KvChunk first = cache.chunk(CHUNKS - 1); // released last, so handed out first
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
