package io.kvstash.engine.kv;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Chunk layouts, sealing and attention on every format, against an independent decoder of the
 * documented layout ({@link ChunkDecoder}) and direct double-precision computation.
 */
class KvChunkTest {
    static Stream<Arguments> geometries() {
        List<Arguments> out = new ArrayList<>();
        for (KvFormat format : KvFormat.values()) {
            if (!format.isKivi()) {
                out.add(Arguments.of(new KvGeometry(1, 1, 8, 1, format)));
                // Head dims that leave a tail after any vector width, odd token counts.
                out.add(Arguments.of(new KvGeometry(3, 4, 20, 7, format)));
                out.add(Arguments.of(new KvGeometry(2, 1, 36, 13, format)));
            }
            out.add(Arguments.of(new KvGeometry(2, 2, 16, 64, format)));
            // stories15M's head dimension, 48: one full and one half channel group.
            out.add(Arguments.of(new KvGeometry(2, 2, 48, 64, format)));
            out.add(Arguments.of(new KvGeometry(1, 3, 8, 128, format)));
            out.add(Arguments.of(new KvGeometry(1, 1, 128, 64, format)));
        }
        return out.stream();
    }

    @ParameterizedTest
    @MethodSource("geometries")
    void shouldTileChunkExactlyWhenRegionsAreListed(KvGeometry g) {
        for (KvFormat f : new KvFormat[] {KvFormat.F32, g.format()}) {
            ChunkLayout layout = ChunkLayout.of(g, f);
            record Region(long start, long bytes, String name) {}
            List<Region> regions = new ArrayList<>();
            for (int l = 0; l < g.layers(); l++) {
                for (int kv = 0; kv < 2; kv++) {
                    for (int h = 0; h < g.kvHeads(); h++) {
                        regions.add(new Region(layout.blockOffset(l, kv == 1, h), layout.blockBytes(kv == 1),
                                "layer " + l + (kv == 1 ? " V" : " K") + " head " + h));
                    }
                }
            }
            regions.sort((a, b) -> Long.compare(a.start(), b.start()));
            long expected = 0;
            for (Region r : regions) {
                assertEquals(expected, r.start(), f + ": " + r.name() + " does not start where the previous region ends");
                expected += r.bytes();
            }
            assertEquals(layout.chunkBytes(), expected, f + ": regions do not cover the chunk exactly");
        }
    }

    @Test
    void shouldRefuseGeometryWithNonPositiveSizes() {
        assertThrows(IllegalArgumentException.class, () -> new KvGeometry(0, 1, 8, 8, KvFormat.F32));
        assertThrows(IllegalArgumentException.class, () -> new KvGeometry(1, 0, 8, 8, KvFormat.F32));
        assertThrows(IllegalArgumentException.class, () -> new KvGeometry(1, 1, 0, 8, KvFormat.F32));
        assertThrows(IllegalArgumentException.class, () -> new KvGeometry(1, 1, 8, 0, KvFormat.F16));
    }

    @Test
    void shouldRefuseKiviChunksThatDoNotPackIntoWholeVectors() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new KvGeometry(1, 1, 8, 32, KvFormat.KIVI2).layout());
        assertTrue(e.getMessage().contains("KIVI2") && e.getMessage().contains("64"), e.getMessage());
        new KvGeometry(1, 1, 8, 32, KvFormat.KIVI4).layout();
    }

    @Test
    void shouldParseFormatNamesAndListThemWhenUnknown() {
        assertEquals(KvFormat.F16, KvFormat.parse("f16"));
        assertEquals(KvFormat.KIVI2, KvFormat.parse("kivi2"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> KvFormat.parse("q4"));
        assertTrue(e.getMessage().contains("KIVI4") && e.getMessage().contains("Q8"), e.getMessage());
    }

    /** KV of a whole chunk, [layer][token][kvDim], keys with outlier channels as real models have. */
    private static float[][][][] randomKv(KvGeometry g, Random random) {
        float[][][][] kv = new float[2][g.layers()][g.chunkTokens()][g.kvDim()];
        for (int l = 0; l < g.layers(); l++) {
            for (int t = 0; t < g.chunkTokens(); t++) {
                for (int i = 0; i < g.kvDim(); i++) {
                    kv[0][l][t][i] = (float) random.nextGaussian() * (i % 7 == 0 ? 8 : 2) + (i % 5) - 2;
                    kv[1][l][t][i] = (float) random.nextGaussian();
                }
            }
        }
        return kv;
    }

    private static void writeShuffled(KvChunk chunk, KvGeometry g, float[][][][] kv, Random random) {
        List<int[]> order = new ArrayList<>();
        for (int l = 0; l < g.layers(); l++) {
            for (int t = 0; t < g.chunkTokens(); t++) {
                order.add(new int[] {l, t});
            }
        }
        Collections.shuffle(order, random);
        int kvDim = g.kvDim();
        for (int[] lt : order) {
            // Source arrays with an offset, as the forward pass passes them.
            float[] kSrc = new float[5 + kvDim];
            float[] vSrc = new float[9 + kvDim];
            System.arraycopy(kv[0][lt[0]][lt[1]], 0, kSrc, 5, kvDim);
            System.arraycopy(kv[1][lt[0]][lt[1]], 0, vSrc, 9, kvDim);
            chunk.write(lt[0], lt[1], kSrc, 5, vSrc, 9);
        }
    }

    /** Largest error sealing may introduce for a value of {@code x} in a group spanning {@code range}. */
    private static double bound(KvFormat f, double range, double amax, double x) {
        return switch (f) {
            case F32 -> 0;
            case F16 -> Math.abs(x) * 0x1p-11 + 1e-7;
            case Q8 -> amax / 127 * 0.5 * 1.001 + 1e-6;
            // Half-step of the code grid, plus the half-float rounding of min and scale.
            case KIVI4 -> range / 15 * 0.5 * 1.01 + range * 2e-3 + Math.abs(x) * 2e-3 + 1e-4;
            case KIVI2 -> range / 3 * 0.5 * 1.01 + range * 2e-3 + Math.abs(x) * 2e-3 + 1e-4;
        };
    }

    @ParameterizedTest
    @MethodSource("geometries")
    void shouldStayWithinQuantizationErrorWhenSealed(KvGeometry g) {
        Random random = new Random(g.hashCode());
        float[][][][] kv = randomKv(g, random);
        try (SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE)) {
            KvChunk tail = store.allocate();
            writeShuffled(tail, g, kv, random);
            KvChunk sealed = store.seal(tail);
            assertEquals(g.format(), sealed.format());
            int hd = g.headDim();
            for (int l = 0; l < g.layers(); l++) {
                for (int h = 0; h < g.kvHeads(); h++) {
                    for (int v = 0; v < 2; v++) {
                        float[][] decoded = ChunkDecoder.decode(sealed, l, v == 1, h);
                        for (int t = 0; t < g.chunkTokens(); t++) {
                            for (int i = 0; i < hd; i++) {
                                double x = kv[v][l][t][h * hd + i];
                                double[] rangeAmax = groupStats(g, kv[v][l], h, v == 1, t, i);
                                assertEquals(x, decoded[t][i], bound(g.format(), rangeAmax[0], rangeAmax[1], x),
                                        g + (v == 1 ? " value" : " key") + " layer " + l + " head " + h + " token " + t + " dim " + i);
                            }
                        }
                    }
                }
            }
        }
    }

    /** Range and max |x| of the quantization group holding (t, i): per token for Q8 and KIVI values, per channel for KIVI keys. */
    private static double[] groupStats(KvGeometry g, float[][] x, int head, boolean value, int t, int i) {
        int hd = g.headDim();
        int gs = KvFormat.GROUP;
        double min = Double.POSITIVE_INFINITY;
        double max = Double.NEGATIVE_INFINITY;
        double amax = 0;
        boolean perChannel = g.format().isKivi() && !value;
        int lo = perChannel ? t / gs * gs : i / gs * gs;
        int hi = perChannel ? lo + gs : Math.min(hd, lo + gs);
        for (int j = lo; j < hi; j++) {
            double y = perChannel ? x[j][head * hd + i] : x[t][head * hd + j];
            min = Math.min(min, y);
            max = Math.max(max, y);
            amax = Math.max(amax, Math.abs(y));
        }
        return new double[] {max - min, amax};
    }

    @ParameterizedTest
    @MethodSource("geometries")
    void shouldAttendOverChunkAsOverItsDecodedValues(KvGeometry g) {
        Random random = new Random(g.hashCode() * 31L);
        float[][][][] kv = randomKv(g, random);
        float[] scratch = new float[KvChunk.scratchFloats(g)];
        try (SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE)) {
            KvChunk tail = store.allocate();
            writeShuffled(tail, g, kv, random);
            // The open tail (F32, any count) and the sealed chunk (all positions) must both match.
            checkAttention(tail, g, random, scratch, new int[] {1, (g.chunkTokens() + 1) / 2, g.chunkTokens()});
            KvChunk sealed = store.seal(tail);
            int[] counts = g.format().isKivi() ? new int[] {g.chunkTokens()} : new int[] {1, g.chunkTokens() / 2 + 1, g.chunkTokens()};
            checkAttention(sealed, g, random, scratch, counts);
        }
    }

    private static void checkAttention(KvChunk chunk, KvGeometry g, Random random, float[] scratch, int[] counts) {
        int hd = g.headDim();
        for (int l = 0; l < g.layers(); l++) {
            for (int h = 0; h < g.kvHeads(); h++) {
                float[][] keys = ChunkDecoder.decode(chunk, l, false, h);
                float[][] values = ChunkDecoder.decode(chunk, l, true, h);
                for (int count : counts) {
                    float[] q = new float[3 + hd];
                    for (int i = 0; i < q.length; i++) {
                        q[i] = (float) random.nextGaussian();
                    }
                    float scale = 0.3f;
                    float[] out = new float[4 + count + 2];
                    Arrays.fill(out, 42f);
                    chunk.keyScores(l, h, q, 3, count, scale, out, 4, scratch);
                    for (int t = 0; t < count; t++) {
                        double dot = 0;
                        double mag = 0;
                        for (int i = 0; i < hd; i++) {
                            dot += q[3 + i] * (double) keys[t][i];
                            mag += Math.abs(q[3 + i] * (double) keys[t][i]);
                        }
                        assertEquals(scale * dot, out[4 + t], 2e-6 * scale * mag + 1e-6,
                                chunk.format() + " " + g + ": score of layer " + l + " head " + h + " token " + t + " (count " + count + ")");
                    }
                    assertEquals(42f, out[3], "wrote before its range");
                    assertEquals(42f, out[4 + count], "wrote past its range");

                    float[] w = new float[2 + count];
                    for (int i = 0; i < w.length; i++) {
                        w[i] = random.nextFloat();
                    }
                    float[] acc = new float[7 + hd + 1];
                    for (int i = 0; i < acc.length; i++) {
                        acc[i] = i; // accumulated onto, not overwritten
                    }
                    chunk.accumulateValues(l, h, w, 2, count, acc, 7, scratch);
                    for (int i = 0; i < hd; i++) {
                        double expected = 7 + i;
                        double mag = Math.abs(expected);
                        for (int t = 0; t < count; t++) {
                            expected += w[2 + t] * (double) values[t][i];
                            mag += Math.abs(w[2 + t] * (double) values[t][i]);
                        }
                        assertEquals(expected, acc[7 + i], 2e-6 * mag + 1e-6,
                                chunk.format() + " " + g + ": value sum of layer " + l + " head " + h + " dim " + i + " (count " + count + ")");
                    }
                    assertEquals(6f, acc[6], "wrote before its range");
                    assertEquals(7f + hd, acc[7 + hd], "wrote past its range");
                }
            }
        }
    }

    @Test
    void shouldRefuseWritesToSealedChunks() {
        KvGeometry g = new KvGeometry(1, 1, 8, 64, KvFormat.Q8);
        try (SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE)) {
            KvChunk sealed = store.seal(store.allocate());
            assertThrows(IllegalStateException.class, () -> sealed.write(0, 0, new float[8], 0, new float[8], 0));
            assertThrows(IllegalArgumentException.class, () -> store.seal(sealed));
        }
    }

    @Test
    void shouldBeAtLeastFiveAndThreeTimesSmallerThanF16WhenKivi2AndKivi4() {
        KvGeometry stories15M = new KvGeometry(6, 6, 48, 64, KvFormat.F16);
        double f16 = stories15M.layout().bytesPerToken();
        double kivi4 = ChunkLayout.of(stories15M, KvFormat.KIVI4).bytesPerToken();
        double kivi2 = ChunkLayout.of(stories15M, KvFormat.KIVI2).bytesPerToken();
        double q8 = ChunkLayout.of(stories15M, KvFormat.Q8).bytesPerToken();
        assertEquals(6 * 6 * 48 * 2 * 2, f16, 0);
        assertTrue(f16 / kivi2 >= 5, "KIVI2 only " + f16 / kivi2 + "x smaller than F16");
        assertTrue(f16 / kivi4 >= 3, "KIVI4 only " + f16 / kivi4 + "x smaller than F16");
        assertTrue(f16 / q8 >= 1.7, "Q8 only " + f16 / q8 + "x smaller than F16");
    }
}
