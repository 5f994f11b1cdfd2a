package io.kvstash.engine.kernel;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;

/** IEEE half and bfloat16 to float, for vectors of {@link Simd#S} lanes. */
final class Half {
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

    static FloatVector bf16ToFloat(ShortVector b16) {
        IntVector b = (IntVector) b16.convertShape(VectorOperators.S2I, Simd.I, 0);
        return b.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }
}
