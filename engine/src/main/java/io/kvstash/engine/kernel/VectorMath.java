package io.kvstash.engine.kernel;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

/** Float-array kernels of the forward pass, each with its scalar twin. */
public final class VectorMath {
    private VectorMath() {
    }

    /** {@code a[aOff..+n) · b[bOff..+n)}. */
    public static float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        return Simd.ENABLED ? dotSimd(a, aOff, b, bOff, n) : dotScalar(a, aOff, b, bOff, n);
    }

    public static float dotScalar(float[] a, int aOff, float[] b, int bOff, int n) {
        float sum = 0f;
        for (int i = 0; i < n; i++) {
            sum += a[aOff + i] * b[bOff + i];
        }
        return sum;
    }

    static float dotSimd(float[] a, int aOff, float[] b, int bOff, int n) {
        FloatVector acc = FloatVector.zero(Simd.F);
        int i = 0;
        int bound = Simd.F.loopBound(n);
        for (; i < bound; i += Simd.FL) {
            acc = FloatVector.fromArray(Simd.F, a, aOff + i).fma(FloatVector.fromArray(Simd.F, b, bOff + i), acc);
        }
        float sum = Simd.sum(acc);
        for (; i < n; i++) {
            sum += a[aOff + i] * b[bOff + i];
        }
        return sum;
    }

    /** {@code y[yOff..+n) += a · x[xOff..+n)}. */
    public static void axpy(float a, float[] x, int xOff, float[] y, int yOff, int n) {
        int i = 0;
        if (Simd.ENABLED) {
            FloatVector av = FloatVector.broadcast(Simd.F, a);
            int bound = Simd.F.loopBound(n);
            for (; i < bound; i += Simd.FL) {
                FloatVector.fromArray(Simd.F, x, xOff + i).fma(av, FloatVector.fromArray(Simd.F, y, yOff + i)).intoArray(y, yOff + i);
            }
        }
        for (; i < n; i++) {
            y[yOff + i] += a * x[xOff + i];
        }
    }

    /** {@code y[yOff..+n) += x[xOff..+n)}. */
    public static void add(float[] x, int xOff, float[] y, int yOff, int n) {
        int i = 0;
        if (Simd.ENABLED) {
            int bound = Simd.F.loopBound(n);
            for (; i < bound; i += Simd.FL) {
                FloatVector.fromArray(Simd.F, x, xOff + i).add(FloatVector.fromArray(Simd.F, y, yOff + i)).intoArray(y, yOff + i);
            }
        }
        for (; i < n; i++) {
            y[yOff + i] += x[xOff + i];
        }
    }

    /** {@code x[xOff..+n) *= a}. */
    public static void scale(float[] x, int xOff, int n, float a) {
        int i = 0;
        if (Simd.ENABLED) {
            int bound = Simd.F.loopBound(n);
            for (; i < bound; i += Simd.FL) {
                FloatVector.fromArray(Simd.F, x, xOff + i).mul(a).intoArray(x, xOff + i);
            }
        }
        for (; i < n; i++) {
            x[xOff + i] *= a;
        }
    }

    /** RMSNorm: {@code out = x / sqrt(mean(x²) + eps) ⊙ weight}. */
    public static void rmsNorm(float[] x, int xOff, float[] weight, float eps, float[] out, int outOff, int n) {
        float ss = dot(x, xOff, x, xOff, n);
        float inv = (float) (1.0 / Math.sqrt(ss / n + eps));
        int i = 0;
        if (Simd.ENABLED) {
            int bound = Simd.F.loopBound(n);
            for (; i < bound; i += Simd.FL) {
                FloatVector.fromArray(Simd.F, x, xOff + i).mul(inv).mul(FloatVector.fromArray(Simd.F, weight, i)).intoArray(out, outOff + i);
            }
        }
        for (; i < n; i++) {
            out[outOff + i] = x[xOff + i] * inv * weight[i];
        }
    }

    /**
     * In-place softmax of {@code x[off..+n)}, normalised to sum 1. The exponentials are scalar
     * {@link Math#exp} on purpose: the vector {@code EXP} is a different approximation once C2
     * compiles it (SVML) than in the interpreter, so KV computed before and after warm-up would
     * differ; {@code Math.exp} is one stub for every tier.
     */
    public static void softmax(float[] x, int off, int n) {
        if (!Simd.ENABLED) {
            softmaxScalar(x, off, n);
            return;
        }
        int bound = Simd.F.loopBound(n);
        FloatVector mv = FloatVector.broadcast(Simd.F, Float.NEGATIVE_INFINITY);
        int i = 0;
        for (; i < bound; i += Simd.FL) {
            mv = mv.max(FloatVector.fromArray(Simd.F, x, off + i));
        }
        float max = mv.reduceLanes(VectorOperators.MAX);
        for (; i < n; i++) {
            max = Math.max(max, x[off + i]);
        }
        float sum = 0f;
        for (i = 0; i < n; i++) {
            float e = (float) Math.exp(x[off + i] - max);
            x[off + i] = e;
            sum += e;
        }
        scale(x, off, n, 1f / sum);
    }

    /** The scalar twin of {@link #softmax}. */
    public static void softmaxScalar(float[] x, int off, int n) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, x[off + i]);
        }
        float sum = 0f;
        for (int i = 0; i < n; i++) {
            float e = (float) Math.exp(x[off + i] - max);
            x[off + i] = e;
            sum += e;
        }
        float inv = 1f / sum;
        for (int i = 0; i < n; i++) {
            x[off + i] *= inv;
        }
    }

    /**
     * Index of the largest of {@code x[0..n)}, the lowest on ties; −1 when an entry is NaN or
     * +∞, or when every entry is −∞ (no meaningful maximum: the caller names the culprit).
     */
    public static int argmax(float[] x, int n) {
        float max = Float.NEGATIVE_INFINITY;
        int i = 0;
        if (Simd.ENABLED) {
            int bound = Simd.F.loopBound(n);
            FloatVector mv = FloatVector.broadcast(Simd.F, Float.NEGATIVE_INFINITY);
            for (; i < bound; i += Simd.FL) {
                mv = mv.max(FloatVector.fromArray(Simd.F, x, i)); // NaN wins, as in Math.max
            }
            max = mv.reduceLanes(VectorOperators.MAX);
        }
        for (; i < n; i++) {
            max = Math.max(max, x[i]);
        }
        // All −∞ would otherwise match its first entry below.
        if (!(max < Float.POSITIVE_INFINITY) || max == Float.NEGATIVE_INFINITY) {
            return -1;
        }
        i = 0;
        if (Simd.ENABLED) {
            int bound = Simd.F.loopBound(n);
            for (; i < bound; i += Simd.FL) {
                int lane = FloatVector.fromArray(Simd.F, x, i).compare(VectorOperators.EQ, max).firstTrue();
                if (lane < Simd.FL) {
                    return i + lane;
                }
            }
        }
        for (; i < n; i++) {
            if (x[i] == max) {
                return i;
            }
        }
        return -1; // unreachable: max is one of the entries
    }

    /** SwiGLU: {@code gate[i] = silu(gate[i]) · up[i]}, with scalar {@link Math#exp} (see {@link #softmax}). */
    public static void swiglu(float[] gate, int gOff, float[] up, int uOff, int n) {
        for (int i = 0; i < n; i++) {
            float g = gate[gOff + i];
            gate[gOff + i] = g / (1f + (float) Math.exp(-g)) * up[uOff + i];
        }
    }
}
