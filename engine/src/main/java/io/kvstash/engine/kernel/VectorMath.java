package io.kvstash.engine.kernel;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
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
     * In-place softmax of {@code x[off..+n)}, normalised to sum 1. The exponentials are
     * {@link #exp}'s polynomial, lane by lane, and the sum runs in index order, so the result
     * does not depend on the vector width or on the JIT tier (the Vector API's own {@code EXP}
     * is an SVML call once C2 compiles it and Java code before that, so KV computed before and
     * after warm-up would differ).
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
        scale(x, off, n, 1f / expShift(x, off, n, max));
    }

    /**
     * {@code x[off+i] = e^(x[off+i] − shift)} for {@code i < n}, returning their sum: softmax without
     * the division, for attention computed in parts and merged by log-sum-exp (a part keeps its
     * running maximum as {@code shift}). The same exp as {@link #softmax}, summed in index order, so
     * the result does not depend on the vector width.
     */
    public static float expShift(float[] x, int off, int n, float shift) {
        if (!Simd.ENABLED) {
            return expShiftScalar(x, off, n, shift);
        }
        int bound = Simd.F.loopBound(n);
        int i = 0;
        for (; i < bound; i += Simd.FL) {
            // exp written out (see exp): a vector passed to a call C2 declines to inline is boxed.
            FloatVector ex = FloatVector.fromArray(Simd.F, x, off + i).sub(shift);
            FloatVector xc = ex.max(EXP_LO).min(EXP_HI);
            FloatVector en = xc.fma(LOG2E, ROUNDER).sub(ROUNDER);
            FloatVector r = en.fma(FloatVector.broadcast(Simd.F, -LN2_HI), xc);
            r = en.fma(FloatVector.broadcast(Simd.F, -LN2_LO), r);
            FloatVector p = r.fma(P0, P1);
            p = p.fma(r, FloatVector.broadcast(Simd.F, P2));
            p = p.fma(r, FloatVector.broadcast(Simd.F, P3));
            p = p.fma(r, FloatVector.broadcast(Simd.F, P4));
            p = p.fma(r, FloatVector.broadcast(Simd.F, P5));
            FloatVector pow2 = ((IntVector) en.convert(VectorOperators.F2I, 0)).add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
            FloatVector e = p.fma(r.mul(r), r).add(1f).mul(pow2)
                    .blend(0f, ex.lt(EXP_LO))
                    .blend(Float.POSITIVE_INFINITY, ex.compare(VectorOperators.GT, EXP_HI));
            e.intoArray(x, off + i);
        }
        for (; i < n; i++) {
            x[off + i] = exp(x[off + i] - shift);
        }
        float sum = 0f;
        for (i = 0; i < n; i++) {
            sum += x[off + i];
        }
        return sum;
    }

    /** The scalar twin of {@link #expShift}. */
    public static float expShiftScalar(float[] x, int off, int n, float shift) {
        float sum = 0f;
        for (int i = 0; i < n; i++) {
            float e = exp(x[off + i] - shift);
            x[off + i] = e;
            sum += e;
        }
        return sum;
    }

    /** The scalar twin of {@link #softmax}. */
    public static void softmaxScalar(float[] x, int off, int n) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, x[off + i]);
        }
        float inv = 1f / expShiftScalar(x, off, n, max);
        for (int i = 0; i < n; i++) {
            x[off + i] *= inv;
        }
    }

    // ---- exp: Cody-Waite range reduction and Cephes' expf polynomial (about 1 ulp), the same
    // operations in the same order lane by lane and in the scalar twin, so both give the same bits.
    // The lane version is written out in each loop that needs it (softmax, swiglu): as a method it
    // compiles to more code than C2 inlines into a caller, and a vector passed to or returned from
    // a call that is not inlined is boxed (an allocation per vector).

    private static final float EXP_LO = -87.0f;  // below: 0 (e^-87 is about the smallest normal float)
    private static final float EXP_HI = 88.0f;   // above: +inf (e^88.72 overflows)
    private static final float LOG2E = 1.44269504088896341f;
    private static final float ROUNDER = 12582912f;  // 1.5·2^23: adding it rounds to an integer
    private static final float LN2_HI = 0.693359375f;  // few bits, so n·LN2_HI is exact
    private static final float LN2_LO = -2.12194440e-4f;
    private static final float P0 = 1.9875691500e-4f;
    private static final float P1 = 1.3981999507e-3f;
    private static final float P2 = 8.3334519073e-3f;
    private static final float P3 = 4.1665795894e-2f;
    private static final float P4 = 1.6666665459e-1f;
    private static final float P5 = 5.0000001201e-1f;

    /** e<sup>x</sup> for floats, within about one ulp; 0 below −87, +∞ above 88, NaN for NaN. */
    public static float exp(float x) {
        float xc = Math.min(Math.max(x, EXP_LO), EXP_HI);
        float n = Math.fma(xc, LOG2E, ROUNDER) - ROUNDER;
        float r = Math.fma(n, -LN2_HI, xc);
        r = Math.fma(n, -LN2_LO, r);
        float p = Math.fma(P0, r, P1);
        p = Math.fma(p, r, P2);
        p = Math.fma(p, r, P3);
        p = Math.fma(p, r, P4);
        p = Math.fma(p, r, P5);
        float y = Math.fma(p, r * r, r) + 1f;
        float e = y * Float.intBitsToFloat(((int) n + 127) << 23);
        if (x < EXP_LO) {
            return 0f;
        }
        return x > EXP_HI ? Float.POSITIVE_INFINITY : e;
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

    /** SwiGLU: {@code gate[i] = silu(gate[i]) · up[i]}, with {@link #exp} (see {@link #softmax}). */
    public static void swiglu(float[] gate, int gOff, float[] up, int uOff, int n) {
        int i = 0;
        if (Simd.ENABLED) {
            int bound = Simd.F.loopBound(n);
            for (; i < bound; i += Simd.FL) {
                FloatVector g = FloatVector.fromArray(Simd.F, gate, gOff + i);
                FloatVector ex = g.neg();
                FloatVector xc = ex.max(EXP_LO).min(EXP_HI);
                FloatVector en = xc.fma(LOG2E, ROUNDER).sub(ROUNDER);
                FloatVector r = en.fma(FloatVector.broadcast(Simd.F, -LN2_HI), xc);
                r = en.fma(FloatVector.broadcast(Simd.F, -LN2_LO), r);
                FloatVector p = r.fma(P0, P1);
                p = p.fma(r, FloatVector.broadcast(Simd.F, P2));
                p = p.fma(r, FloatVector.broadcast(Simd.F, P3));
                p = p.fma(r, FloatVector.broadcast(Simd.F, P4));
                p = p.fma(r, FloatVector.broadcast(Simd.F, P5));
                FloatVector pow2 = ((IntVector) en.convert(VectorOperators.F2I, 0)).add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
                FloatVector e = p.fma(r.mul(r), r).add(1f).mul(pow2)
                        .blend(0f, ex.lt(EXP_LO))
                        .blend(Float.POSITIVE_INFINITY, ex.compare(VectorOperators.GT, EXP_HI));
                g.div(e.add(1f)).mul(FloatVector.fromArray(Simd.F, up, uOff + i)).intoArray(gate, gOff + i);
            }
        }
        for (; i < n; i++) {
            float g = gate[gOff + i];
            gate[gOff + i] = g / (1f + exp(-g)) * up[uOff + i];
        }
    }

    /** The scalar twin of {@link #swiglu}. */
    public static void swigluScalar(float[] gate, int gOff, float[] up, int uOff, int n) {
        for (int i = 0; i < n; i++) {
            float g = gate[gOff + i];
            gate[gOff + i] = g / (1f + exp(-g)) * up[uOff + i];
        }
    }
}
