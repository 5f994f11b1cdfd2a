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
        float sum = acc.reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) {
            sum += a[aOff + i] * b[bOff + i];
        }
        return sum;
    }

    /**
     * Four dot products of {@code w[0..n)} with the four consecutive vectors
     * {@code x[xOff + t·n .. +n)}, t = 0..3, into {@code out[outOff + t·outStride]}: each load of
     * {@code w} serves four tokens.
     */
    public static void dot4(float[] w, float[] x, int xOff, int n, float[] out, int outOff, int outStride) {
        if (!Simd.ENABLED) {
            for (int t = 0; t < 4; t++) {
                out[outOff + t * outStride] = dotScalar(w, 0, x, xOff + t * n, n);
            }
            return;
        }
        FloatVector a0 = FloatVector.zero(Simd.F);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        int x0 = xOff;
        int x1 = xOff + n;
        int x2 = xOff + 2 * n;
        int x3 = xOff + 3 * n;
        int i = 0;
        int bound = Simd.F.loopBound(n);
        for (; i < bound; i += Simd.FL) {
            FloatVector wv = FloatVector.fromArray(Simd.F, w, i);
            a0 = wv.fma(FloatVector.fromArray(Simd.F, x, x0 + i), a0);
            a1 = wv.fma(FloatVector.fromArray(Simd.F, x, x1 + i), a1);
            a2 = wv.fma(FloatVector.fromArray(Simd.F, x, x2 + i), a2);
            a3 = wv.fma(FloatVector.fromArray(Simd.F, x, x3 + i), a3);
        }
        float s0 = a0.reduceLanes(VectorOperators.ADD);
        float s1 = a1.reduceLanes(VectorOperators.ADD);
        float s2 = a2.reduceLanes(VectorOperators.ADD);
        float s3 = a3.reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) {
            float wi = w[i];
            s0 += wi * x[x0 + i];
            s1 += wi * x[x1 + i];
            s2 += wi * x[x2 + i];
            s3 += wi * x[x3 + i];
        }
        out[outOff] = s0;
        out[outOff + outStride] = s1;
        out[outOff + 2 * outStride] = s2;
        out[outOff + 3 * outStride] = s3;
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

    /** In-place softmax of {@code x[off..+n)}; returns nothing, normalises to sum 1. */
    public static void softmax(float[] x, int off, int n) {
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
        scale(x, off, n, 1f / sum);
    }

    /** SwiGLU: {@code gate[i] = silu(gate[i]) · up[i]}. */
    public static void swiglu(float[] gate, int gOff, float[] up, int uOff, int n) {
        int i = 0;
        if (Simd.ENABLED) {
            int bound = Simd.F.loopBound(n);
            for (; i < bound; i += Simd.FL) {
                FloatVector g = FloatVector.fromArray(Simd.F, gate, gOff + i);
                FloatVector silu = g.div(g.neg().lanewise(VectorOperators.EXP).add(1f));
                silu.mul(FloatVector.fromArray(Simd.F, up, uOff + i)).intoArray(gate, gOff + i);
            }
        }
        for (; i < n; i++) {
            float g = gate[gOff + i];
            gate[gOff + i] = g / (1f + (float) Math.exp(-g)) * up[uOff + i];
        }
    }
}
