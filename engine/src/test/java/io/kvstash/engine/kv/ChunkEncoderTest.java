package io.kvstash.engine.kv;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.kvstash.engine.kernel.Simd;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The vector path of the KIVI encoder writes exactly the bytes of the scalar path: the same
 * minima, scales and codes, on values chosen to hit rounding ties, constant groups, values past
 * the half range and head dims that are not a multiple of the group or the vector. Runs in every
 * vector-width execution of the build.
 */
class ChunkEncoderTest {
    @ParameterizedTest
    @EnumSource(value = KvFormat.class, names = {"KIVI4", "KIVI2"})
    void shouldEncodeWithVectorsExactlyAsTheScalarPath(KvFormat format) {
        Random r = new Random(5);
        for (int d : new int[] {8, 40, 48, 64, 100}) {
            KvGeometry g = new KvGeometry(2, 2, d, 64, format);
            try (SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE)) {
                KvChunk tail = store.allocate();
                float[] k = new float[g.kvDim()];
                float[] v = new float[g.kvDim()];
                for (int layer = 0; layer < g.layers(); layer++) {
                    for (int t = 0; t < g.chunkTokens(); t++) {
                        for (int i = 0; i < g.kvDim(); i++) {
                            // Layer 1, head 0: constant groups (scale 0).
                            k[i] = layer == 1 && i < d ? 0.25f : sample(r, t, i);
                            v[i] = layer == 1 && i < d ? -3f : sample(r, i, t);
                        }
                        tail.write(layer, t, k, 0, v, 0);
                    }
                }
                KvChunk vector = store.allocateSealed();
                KvChunk scalar = store.allocateSealed();
                new ChunkEncoder(ChunkLayout.of(g, KvFormat.F32), g.layout(), true).encode(tail, vector);
                new ChunkEncoder(ChunkLayout.of(g, KvFormat.F32), g.layout(), false).encode(tail, scalar);
                MemorySegment a = vector.data();
                MemorySegment b = scalar.data();
                long bytes = g.layout().chunkBytes();
                for (long i = 0; i < bytes; i++) {
                    assertEquals(b.get(ValueLayout.JAVA_BYTE, i), a.get(ValueLayout.JAVA_BYTE, i),
                            format + " d=" + d + " byte " + i + " (" + Simd.describe() + ")");
                }
            }
        }
    }

    /** Mostly Gaussian; some constant runs, exact half-steps, huge and tiny magnitudes. */
    private static float sample(Random r, int a, int b) {
        return switch ((a * 7 + b) % 11) {
            case 0 -> 1.5f;
            case 1 -> (float) Math.floor(r.nextGaussian() * 8) / 2f;
            case 2 -> (float) r.nextGaussian() * 1e5f;
            case 3 -> (float) r.nextGaussian() * 1e-6f;
            default -> (float) r.nextGaussian();
        };
    }
}
