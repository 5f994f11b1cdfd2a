package io.kvstash.engine.kv;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The chunk layout of {@link KvGeometry} and the attention kernels of {@link KvChunk}, against direct computation. */
class KvChunkTest {
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    static Stream<Arguments> geometries() {
        List<Arguments> out = new ArrayList<>();
        for (KvFormat format : KvFormat.values()) {
            out.add(Arguments.of(new KvGeometry(1, 1, 8, 1, format)));
            out.add(Arguments.of(new KvGeometry(2, 2, 16, 64, format)));
            // Head dims that leave a tail after any vector width, odd token counts.
            out.add(Arguments.of(new KvGeometry(3, 4, 20, 7, format)));
            out.add(Arguments.of(new KvGeometry(2, 1, 36, 13, format)));
            out.add(Arguments.of(new KvGeometry(1, 3, 64, 64, format)));
        }
        return out.stream();
    }

    @ParameterizedTest
    @MethodSource("geometries")
    void shouldTileChunkExactlyWhenRegionsAreListed(KvGeometry g) {
        record Region(long start, String name) {}
        List<Region> regions = new ArrayList<>();
        for (int l = 0; l < g.layers(); l++) {
            for (int kv = 0; kv < 2; kv++) {
                for (int h = 0; h < g.kvHeads(); h++) {
                    regions.add(new Region(g.headOffset(l, kv == 1, h), "layer " + l + (kv == 1 ? " V" : " K") + " head " + h));
                }
            }
        }
        assertEquals(g.chunkTokens() * g.headDim() * g.format().bytesPerElement, g.headBytes());
        assertEquals(2L * g.layers() * g.kvHeads() * g.headBytes(), g.chunkBytes());
        Collections.sort(regions, (a, b) -> Long.compare(a.start(), b.start()));
        long expected = 0;
        for (Region r : regions) {
            // Sorted regions of headBytes each, each starting where the previous ended: disjoint, no gaps.
            assertEquals(expected, r.start(), r.name() + " does not start where the previous region ends");
            expected += g.headBytes();
        }
        assertEquals(g.chunkBytes(), expected, "regions do not cover the chunk exactly");
    }

    @Test
    void shouldRefuseGeometryWithNonPositiveSizes() {
        assertThrows(IllegalArgumentException.class, () -> new KvGeometry(0, 1, 8, 8, KvFormat.F32));
        assertThrows(IllegalArgumentException.class, () -> new KvGeometry(1, 0, 8, 8, KvFormat.F32));
        assertThrows(IllegalArgumentException.class, () -> new KvGeometry(1, 1, 0, 8, KvFormat.F32));
        assertThrows(IllegalArgumentException.class, () -> new KvGeometry(1, 1, 8, 0, KvFormat.F16));
    }

    @Test
    void shouldParseFormatNamesAndListThemWhenUnknown() {
        assertEquals(KvFormat.F16, KvFormat.parse("f16"));
        assertEquals(KvFormat.F32, KvFormat.parse("F32"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> KvFormat.parse("q8"));
        assertTrue(e.getMessage().contains("F16") && e.getMessage().contains("F32"), e.getMessage());
    }

    @ParameterizedTest
    @MethodSource("geometries")
    void shouldScoreKeysAndAccumulateValuesWhenWrittenInAnyOrder(KvGeometry g) {
        int hd = g.headDim();
        int kvDim = g.kvDim();
        Random random = new Random(g.hashCode());
        float[][][] k = new float[g.layers()][g.chunkTokens()][kvDim];
        float[][][] v = new float[g.layers()][g.chunkTokens()][kvDim];
        List<int[]> order = new ArrayList<>();
        for (int l = 0; l < g.layers(); l++) {
            for (int t = 0; t < g.chunkTokens(); t++) {
                for (int i = 0; i < kvDim; i++) {
                    k[l][t][i] = (float) random.nextGaussian() * 3;
                    v[l][t][i] = (float) random.nextGaussian();
                }
                order.add(new int[] {l, t});
            }
        }
        Collections.shuffle(order, random);
        try (SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE)) {
            KvChunk chunk = store.allocate();
            for (int[] lt : order) {
                // Source arrays with an offset, as the forward pass passes them.
                float[] kSrc = new float[5 + kvDim];
                float[] vSrc = new float[9 + kvDim];
                System.arraycopy(k[lt[0]][lt[1]], 0, kSrc, 5, kvDim);
                System.arraycopy(v[lt[0]][lt[1]], 0, vSrc, 9, kvDim);
                chunk.write(lt[0], lt[1], kSrc, 5, vSrc, 9);
            }
            for (int l = 0; l < g.layers(); l++) {
                for (int h = 0; h < g.kvHeads(); h++) {
                    for (int t = 0; t < g.chunkTokens(); t++) {
                        for (int i = 0; i < hd; i++) {
                            long off = (long) (t * hd + i) * g.format().bytesPerElement;
                            float storedK = stored(chunk, g.headOffset(l, false, h) + off);
                            float storedV = stored(chunk, g.headOffset(l, true, h) + off);
                            assertEquals(expectedStored(g, k[l][t][h * hd + i]), storedK, "key layer " + l + " head " + h + " token " + t);
                            assertEquals(expectedStored(g, v[l][t][h * hd + i]), storedV, "value layer " + l + " head " + h + " token " + t);
                        }
                    }
                    for (int count : new int[] {1, (g.chunkTokens() + 1) / 2, g.chunkTokens()}) {
                        checkKeyScores(chunk, g, l, h, count, k, random);
                        checkValues(chunk, g, l, h, count, v, random);
                    }
                }
            }
        }
    }

    private static void checkKeyScores(KvChunk chunk, KvGeometry g, int l, int h, int count, float[][][] k, Random random) {
        int hd = g.headDim();
        float[] q = new float[3 + hd];
        for (int i = 0; i < q.length; i++) {
            q[i] = (float) random.nextGaussian();
        }
        float scale = 0.3f;
        float[] out = new float[4 + count + 2];
        java.util.Arrays.fill(out, 42f);
        chunk.keyScores(l, h, q, 3, count, scale, out, 4);
        for (int t = 0; t < count; t++) {
            double dot = 0;
            double mag = 0;
            for (int i = 0; i < hd; i++) {
                double key = expectedStored(g, k[l][t][h * hd + i]);
                dot += q[3 + i] * key;
                mag += Math.abs(q[3 + i] * key);
            }
            double expected = scale * dot;
            assertEquals(expected, out[4 + t], 1e-6 * scale * mag + 1e-7,
                    g + ": score of layer " + l + " head " + h + " token " + t + " (count " + count + ")");
        }
        assertEquals(42f, out[3], "wrote before its range");
        assertEquals(42f, out[4 + count], "wrote past its range");
    }

    private static void checkValues(KvChunk chunk, KvGeometry g, int l, int h, int count, float[][][] v, Random random) {
        int hd = g.headDim();
        float[] w = new float[2 + count];
        for (int i = 0; i < w.length; i++) {
            w[i] = random.nextFloat();
        }
        float[] out = new float[7 + hd + 1];
        for (int i = 0; i < out.length; i++) {
            out[i] = i; // accumulated onto, not overwritten
        }
        chunk.accumulateValues(l, h, w, 2, count, out, 7);
        for (int i = 0; i < hd; i++) {
            double expected = 7 + i;
            double mag = Math.abs(expected);
            for (int t = 0; t < count; t++) {
                double value = expectedStored(g, v[l][t][h * hd + i]);
                expected += w[2 + t] * value;
                mag += Math.abs(w[2 + t] * value);
            }
            assertEquals(expected, out[7 + i], 1e-6 * mag, g + ": value sum of layer " + l + " head " + h + " dim " + i + " (count " + count + ")");
        }
        assertEquals(6f, out[6], "wrote before its range");
        assertEquals(7f + hd, out[7 + hd], "wrote past its range");
    }

    /** What the chunk should hold for {@code x}: itself for F32, its round-to-nearest-even half for F16. */
    private static float expectedStored(KvGeometry g, float x) {
        return g.format() == KvFormat.F32 ? x : Float.float16ToFloat(Float.floatToFloat16(x));
    }

    private static float stored(KvChunk chunk, long offset) {
        return chunk.geometry().format() == KvFormat.F32
                ? chunk.data().get(FLOAT, offset)
                : Float.float16ToFloat(chunk.data().get(SHORT, offset));
    }
}
