package io.kvstash.engine.kernel;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;

/**
 * Attention over KV chunk memory: query·key dot products and value accumulation, read in place
 * from the chunk's segment for each stored element type, with scalar twins.
 */
public final class KvKernels {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private KvKernels() {
    }

    // ---- F32 ----

    public static float dotF32(MemorySegment seg, long off, float[] q, int qOff, int n) {
        int i = 0;
        float sum = 0f;
        if (Simd.ENABLED) {
            FloatVector acc = FloatVector.zero(Simd.F);
            int bound = Simd.F.loopBound(n);
            for (; i < bound; i += Simd.FL) {
                acc = FloatVector.fromMemorySegment(Simd.F, seg, off + 4L * i, ByteOrder.LITTLE_ENDIAN)
                        .fma(FloatVector.fromArray(Simd.F, q, qOff + i), acc);
            }
            sum = Simd.sum(acc);
        }
        for (; i < n; i++) {
            sum += seg.get(FLOAT, off + 4L * i) * q[qOff + i];
        }
        return sum;
    }

    public static float dotF32Scalar(MemorySegment seg, long off, float[] q, int qOff, int n) {
        float sum = 0f;
        for (int i = 0; i < n; i++) {
            sum += seg.get(FLOAT, off + 4L * i) * q[qOff + i];
        }
        return sum;
    }

    /** {@code out[outOff..+n) += a · seg[off..]} with F32 elements. */
    public static void axpyF32(float a, MemorySegment seg, long off, float[] out, int outOff, int n) {
        int i = 0;
        if (Simd.ENABLED) {
            FloatVector av = FloatVector.broadcast(Simd.F, a);
            int bound = Simd.F.loopBound(n);
            for (; i < bound; i += Simd.FL) {
                FloatVector.fromMemorySegment(Simd.F, seg, off + 4L * i, ByteOrder.LITTLE_ENDIAN)
                        .fma(av, FloatVector.fromArray(Simd.F, out, outOff + i)).intoArray(out, outOff + i);
            }
        }
        for (; i < n; i++) {
            out[outOff + i] += a * seg.get(FLOAT, off + 4L * i);
        }
    }

    public static void axpyF32Scalar(float a, MemorySegment seg, long off, float[] out, int outOff, int n) {
        for (int i = 0; i < n; i++) {
            out[outOff + i] += a * seg.get(FLOAT, off + 4L * i);
        }
    }

    /**
     * Scores of a token-major F32 key block: {@code out[outOff + t] = scale · (q · key[t])} for
     * t &lt; count, key t at {@code off + 4·t·d}. Four tokens per pass, their lane sums from one tree
     * of lane-wise adds that pairs lanes as {@link Simd#sum} does, so every score has the bits of
     * {@code scale · dotF32(…)} whichever pass computes it.
     */
    public static void scoresF32(MemorySegment seg, long off, int d, float[] q, int qOff, int count, float scale, float[] out, int outOff) {
        int t = 0;
        if (Simd.ENABLED) {
            int bound = Simd.F.loopBound(d);
            long row = 4L * d;
            for (; t + 3 < count; t += 4) {
                long k0 = off + t * row;
                FloatVector a0 = FloatVector.zero(Simd.F);
                FloatVector a1 = a0;
                FloatVector a2 = a0;
                FloatVector a3 = a0;
                for (int i = 0; i < bound; i += Simd.FL) {
                    FloatVector qv = FloatVector.fromArray(Simd.F, q, qOff + i);
                    long at = k0 + 4L * i;
                    a0 = FloatVector.fromMemorySegment(Simd.F, seg, at, ByteOrder.LITTLE_ENDIAN).fma(qv, a0);
                    a1 = FloatVector.fromMemorySegment(Simd.F, seg, at + row, ByteOrder.LITTLE_ENDIAN).fma(qv, a1);
                    a2 = FloatVector.fromMemorySegment(Simd.F, seg, at + 2 * row, ByteOrder.LITTLE_ENDIAN).fma(qv, a2);
                    a3 = FloatVector.fromMemorySegment(Simd.F, seg, at + 3 * row, ByteOrder.LITTLE_ENDIAN).fma(qv, a3);
                }
                FloatVector p01 = a0.blend(a1, Simd.HI_HALF).add(a1.blend(a0, Simd.HI_HALF).rearrange(Simd.SWAP_HALVES));
                FloatVector p23 = a2.blend(a3, Simd.HI_HALF).add(a3.blend(a2, Simd.HI_HALF).rearrange(Simd.SWAP_HALVES));
                FloatVector s4 = p01.blend(p23, Simd.HI_QUARTER).add(p23.blend(p01, Simd.HI_QUARTER).rearrange(Simd.SWAP_QUARTERS));
                if (Simd.FL >= 16) {
                    s4 = s4.add(s4.rearrange(Simd.XOR_2));
                }
                if (Simd.FL >= 8) {
                    s4 = s4.add(s4.rearrange(Simd.XOR_1));
                }
                float s0 = s4.lane(0);
                float s1 = s4.lane(Simd.FL / 2);
                float s2 = s4.lane(Simd.FL / 4);
                float s3 = s4.lane(3 * Simd.FL / 4);
                for (int i = bound; i < d; i++) {
                    float qi = q[qOff + i];
                    long at = k0 + 4L * i;
                    s0 += seg.get(FLOAT, at) * qi;
                    s1 += seg.get(FLOAT, at + row) * qi;
                    s2 += seg.get(FLOAT, at + 2 * row) * qi;
                    s3 += seg.get(FLOAT, at + 3 * row) * qi;
                }
                out[outOff + t] = scale * s0;
                out[outOff + t + 1] = scale * s1;
                out[outOff + t + 2] = scale * s2;
                out[outOff + t + 3] = scale * s3;
            }
        }
        for (; t < count; t++) {
            out[outOff + t] = scale * dotF32(seg, off + 4L * t * d, q, qOff, d);
        }
    }

    public static void scoresF32Scalar(MemorySegment seg, long off, int d, float[] q, int qOff, int count, float scale, float[] out,
                                       int outOff) {
        for (int t = 0; t < count; t++) {
            out[outOff + t] = scale * dotF32Scalar(seg, off + 4L * t * d, q, qOff, d);
        }
    }

    /**
     * {@code out[outOff + c] += Σ_t w[wOff + t] · value[t][c]} over a token-major F32 value block, t &lt; count.
     * Per vector of channels the sum over tokens stays in four registers (tokens t mod 4), added
     * together and to {@code out} once, rather than a load and store of {@code out} per token.
     */
    public static void valuesF32(MemorySegment seg, long off, int d, float[] w, int wOff, int count, float[] out, int outOff) {
        int i = 0;
        if (Simd.ENABLED) {
            int bound = Simd.F.loopBound(d);
            long row = 4L * d;
            int quads = count & ~3;
            for (; i < bound; i += Simd.FL) {
                long col = off + 4L * i;
                FloatVector a0 = FloatVector.zero(Simd.F);
                FloatVector a1 = a0;
                FloatVector a2 = a0;
                FloatVector a3 = a0;
                int t = 0;
                for (; t < quads; t += 4) {
                    long at = col + t * row;
                    a0 = FloatVector.fromMemorySegment(Simd.F, seg, at, ByteOrder.LITTLE_ENDIAN).fma(FloatVector.broadcast(Simd.F, w[wOff + t]), a0);
                    a1 = FloatVector.fromMemorySegment(Simd.F, seg, at + row, ByteOrder.LITTLE_ENDIAN)
                            .fma(FloatVector.broadcast(Simd.F, w[wOff + t + 1]), a1);
                    a2 = FloatVector.fromMemorySegment(Simd.F, seg, at + 2 * row, ByteOrder.LITTLE_ENDIAN)
                            .fma(FloatVector.broadcast(Simd.F, w[wOff + t + 2]), a2);
                    a3 = FloatVector.fromMemorySegment(Simd.F, seg, at + 3 * row, ByteOrder.LITTLE_ENDIAN)
                            .fma(FloatVector.broadcast(Simd.F, w[wOff + t + 3]), a3);
                }
                for (; t < count; t++) {
                    a0 = FloatVector.fromMemorySegment(Simd.F, seg, col + t * row, ByteOrder.LITTLE_ENDIAN)
                            .fma(FloatVector.broadcast(Simd.F, w[wOff + t]), a0);
                }
                a0.add(a1).add(a2.add(a3)).add(FloatVector.fromArray(Simd.F, out, outOff + i)).intoArray(out, outOff + i);
            }
        }
        for (; i < d; i++) {
            float acc = 0f;
            for (int t = 0; t < count; t++) {
                acc += w[wOff + t] * seg.get(FLOAT, off + 4L * ((long) t * d + i));
            }
            out[outOff + i] += acc;
        }
    }

    public static void valuesF32Scalar(MemorySegment seg, long off, int d, float[] w, int wOff, int count, float[] out, int outOff) {
        for (int i = 0; i < d; i++) {
            float acc = 0f;
            for (int t = 0; t < count; t++) {
                acc += w[wOff + t] * seg.get(FLOAT, off + 4L * ((long) t * d + i));
            }
            out[outOff + i] += acc;
        }
    }

    public static void storeF32(float[] src, int srcOff, MemorySegment seg, long off, int n) {
        MemorySegment.copy(src, srcOff, seg, FLOAT, off, n);
    }

    // ---- F16 ----

    public static float dotF16(MemorySegment seg, long off, float[] q, int qOff, int n) {
        int i = 0;
        float sum = 0f;
        if (Simd.ENABLED) {
            FloatVector acc = FloatVector.zero(Simd.F);
            int bound = Simd.F.loopBound(n);
            for (; i < bound; i += Simd.FL) {
                acc = Half.toFloat(ShortVector.fromMemorySegment(Simd.S, seg, off + 2L * i, ByteOrder.LITTLE_ENDIAN))
                        .fma(FloatVector.fromArray(Simd.F, q, qOff + i), acc);
            }
            sum = Simd.sum(acc);
        }
        for (; i < n; i++) {
            sum += Float.float16ToFloat(seg.get(SHORT, off + 2L * i)) * q[qOff + i];
        }
        return sum;
    }

    public static float dotF16Scalar(MemorySegment seg, long off, float[] q, int qOff, int n) {
        float sum = 0f;
        for (int i = 0; i < n; i++) {
            sum += Float.float16ToFloat(seg.get(SHORT, off + 2L * i)) * q[qOff + i];
        }
        return sum;
    }

    public static void axpyF16(float a, MemorySegment seg, long off, float[] out, int outOff, int n) {
        int i = 0;
        if (Simd.ENABLED) {
            FloatVector av = FloatVector.broadcast(Simd.F, a);
            int bound = Simd.F.loopBound(n);
            for (; i < bound; i += Simd.FL) {
                Half.toFloat(ShortVector.fromMemorySegment(Simd.S, seg, off + 2L * i, ByteOrder.LITTLE_ENDIAN))
                        .fma(av, FloatVector.fromArray(Simd.F, out, outOff + i)).intoArray(out, outOff + i);
            }
        }
        for (; i < n; i++) {
            out[outOff + i] += a * Float.float16ToFloat(seg.get(SHORT, off + 2L * i));
        }
    }

    public static void axpyF16Scalar(float a, MemorySegment seg, long off, float[] out, int outOff, int n) {
        for (int i = 0; i < n; i++) {
            out[outOff + i] += a * Float.float16ToFloat(seg.get(SHORT, off + 2L * i));
        }
    }

    public static void storeF16(float[] src, int srcOff, MemorySegment seg, long off, int n) {
        for (int i = 0; i < n; i++) {
            seg.set(SHORT, off + 2L * i, Half.fromFloat(src[srcOff + i]));
        }
    }
}
