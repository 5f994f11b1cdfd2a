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
