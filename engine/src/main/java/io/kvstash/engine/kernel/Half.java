package io.kvstash.engine.kernel;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;

/** IEEE half and bfloat16 conversions. */
public final class Half {
    private Half() {
    }

    /**
     * Exact half→float for every input: shifting the exponent and mantissa into float position and
     * multiplying by 2^112 re-biases normals and normalises subnormals in one step; infinities and
     * NaNs (exponent all ones) are patched by a blend.
     */
    static FloatVector toFloat(ShortVector h16) {
        IntVector h = (IntVector) h16.convertShape(VectorOperators.S2I, Simd.I, 0);
        IntVector em = h.and(0x7fff).lanewise(VectorOperators.LSHL, 13);
        FloatVector f = em.reinterpretAsFloats().mul(0x1p112f);
        VectorMask<Integer> special = h.and(0x7c00).eq(0x7c00);
        if (special.anyTrue()) {
            f = f.blend(em.or(0x7f800000).reinterpretAsFloats(), special.cast(Simd.F));
        }
        IntVector sign = h.and(0x8000).lanewise(VectorOperators.LSHL, 16);
        return f.reinterpretAsInts().or(sign).reinterpretAsFloats();
    }

    /**
     * float → IEEE half, rounding to nearest even, overflow to infinity, NaN to a quiet NaN. Written
     * out instead of {@link Float#floatToFloat16}, whose C2 intrinsic and interpreted versions were
     * seen to round some values differently: stored KV must have the same bits whether or not the
     * encoder was compiled yet.
     */
    public static short fromFloat(float f) {
        int bits = Float.floatToRawIntBits(f);
        int sign = (bits >>> 16) & 0x8000;
        int abs = bits & 0x7fffffff;
        int h;
        if (abs > 0x7f800000) {
            h = 0x7e00 | ((abs >>> 13) & 0x3ff);
        } else if (abs >= 0x38800000) { // at least 2^-14, the smallest normal half
            int r = abs + 0xfff + ((abs >>> 13) & 1); // round the 13 dropped bits to nearest even
            h = Math.min(0x7c00, (r >>> 13) - (112 << 10));
        } else {
            // A subnormal half (or zero): units of 2^-24; the product is exact, rint ties to even.
            h = (int) Math.rint(Float.intBitsToFloat(abs) * 0x1p24f);
        }
        return (short) (sign | h);
    }

    static FloatVector bf16ToFloat(ShortVector b16) {
        IntVector b = (IntVector) b16.convertShape(VectorOperators.S2I, Simd.I, 0);
        return b.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }
}
