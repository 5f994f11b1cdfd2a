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
     * {@code xT[c · nPad + t] = x[t · cols + c]} for {@code n} tokens, zero for the padding
     * tokens {@code [n, nPad)}: the activation layout {@link WeightMatrix#matMul} reads.
     */
    public static void transpose(float[] x, int n, int cols, float[] xT, int nPad) {
        for (int c = 0; c < cols; c++) {
            int row = c * nPad;
            for (int t = 0; t < n; t++) {
                xT[row + t] = x[t * cols + c];
            }
            for (int t = n; t < nPad; t++) {
                xT[row + t] = 0f;
            }
        }
    }

    /**
     * Four weight rows ({@code w[i · cols ..]}, i = 0..3) times the transposed activations
     * {@code xT (cols, nPad)}: {@code out[outOff + t · outStride + i] = Σ_c w[i][c] · xT[c][t]}
     * for tokens {@code t < n}. {@code lanes[lanesOff ..]} is scratch of {@code 8 · Simd.FL} floats.
     */
    static void tile4(float[] w, int cols, float[] xT, int n, int nPad, float[] out, int outOff, int outStride, float[] lanes, int lanesOff) {
        if (!Simd.ENABLED) {
            for (int i = 0; i < 4; i++) {
                for (int t = 0; t < n; t++) {
                    float sum = 0f;
                    for (int c = 0; c < cols; c++) {
                        sum += w[i * cols + c] * xT[c * nPad + t];
                    }
                    out[outOff + t * outStride + i] = sum;
                }
            }
            return;
        }
        int fl = Simd.FL;
        for (int tt = 0; tt < n; tt += 2 * fl) {
            if (n - tt <= fl) {
                // One vector of tokens left (small batches): half the work of the two-vector tile.
                // Each lane still sums its products in column order, so results are bit-identical.
                tile4Narrow(w, cols, xT, n, nPad, tt, out, outOff, outStride, lanes, lanesOff);
                return;
            }
            FloatVector a00 = FloatVector.zero(Simd.F);
            FloatVector a01 = a00;
            FloatVector a10 = a00;
            FloatVector a11 = a00;
            FloatVector a20 = a00;
            FloatVector a21 = a00;
            FloatVector a30 = a00;
            FloatVector a31 = a00;
            for (int c = 0, xo = tt; c < cols; c++, xo += nPad) {
                FloatVector x0 = FloatVector.fromArray(Simd.F, xT, xo);
                FloatVector x1 = FloatVector.fromArray(Simd.F, xT, xo + fl);
                FloatVector w0 = FloatVector.broadcast(Simd.F, w[c]);
                FloatVector w1 = FloatVector.broadcast(Simd.F, w[cols + c]);
                FloatVector w2 = FloatVector.broadcast(Simd.F, w[2 * cols + c]);
                FloatVector w3 = FloatVector.broadcast(Simd.F, w[3 * cols + c]);
                a00 = x0.fma(w0, a00);
                a01 = x1.fma(w0, a01);
                a10 = x0.fma(w1, a10);
                a11 = x1.fma(w1, a11);
                a20 = x0.fma(w2, a20);
                a21 = x1.fma(w2, a21);
                a30 = x0.fma(w3, a30);
                a31 = x1.fma(w3, a31);
            }
            // Lanes are tokens: spill the tile and scatter it into token-major output.
            a00.intoArray(lanes, lanesOff);
            a01.intoArray(lanes, lanesOff + fl);
            a10.intoArray(lanes, lanesOff + 2 * fl);
            a11.intoArray(lanes, lanesOff + 3 * fl);
            a20.intoArray(lanes, lanesOff + 4 * fl);
            a21.intoArray(lanes, lanesOff + 5 * fl);
            a30.intoArray(lanes, lanesOff + 6 * fl);
            a31.intoArray(lanes, lanesOff + 7 * fl);
            int count = Math.min(2 * fl, n - tt);
            for (int t = 0; t < count; t++) {
                int o = outOff + (tt + t) * outStride;
                out[o] = lanes[lanesOff + t];
                out[o + 1] = lanes[lanesOff + 2 * fl + t];
                out[o + 2] = lanes[lanesOff + 4 * fl + t];
                out[o + 3] = lanes[lanesOff + 6 * fl + t];
            }
        }
    }

    /** {@link #tile4} for the last {@code n − tt ≤ FL} tokens. */
    private static void tile4Narrow(float[] w, int cols, float[] xT, int n, int nPad, int tt, float[] out, int outOff, int outStride,
                                    float[] lanes, int lanesOff) {
        int fl = Simd.FL;
        FloatVector a0 = FloatVector.zero(Simd.F);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        for (int c = 0, xo = tt; c < cols; c++, xo += nPad) {
            FloatVector x0 = FloatVector.fromArray(Simd.F, xT, xo);
            a0 = x0.fma(FloatVector.broadcast(Simd.F, w[c]), a0);
            a1 = x0.fma(FloatVector.broadcast(Simd.F, w[cols + c]), a1);
            a2 = x0.fma(FloatVector.broadcast(Simd.F, w[2 * cols + c]), a2);
            a3 = x0.fma(FloatVector.broadcast(Simd.F, w[3 * cols + c]), a3);
        }
        a0.intoArray(lanes, lanesOff);
        a1.intoArray(lanes, lanesOff + fl);
        a2.intoArray(lanes, lanesOff + 2 * fl);
        a3.intoArray(lanes, lanesOff + 3 * fl);
        int count = n - tt;
        for (int t = 0; t < count; t++) {
            int o = outOff + (tt + t) * outStride;
            out[o] = lanes[lanesOff + t];
            out[o + 1] = lanes[lanesOff + fl + t];
            out[o + 2] = lanes[lanesOff + 2 * fl + t];
            out[o + 3] = lanes[lanesOff + 3 * fl + t];
        }
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
