package io.kvstash.engine.kernel;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The vector width every kernel uses, chosen once per JVM. The system property
 * {@code kvstash.vector.bits} forces it: {@code 0} selects the scalar twins, {@code 128},
 * {@code 256} or {@code 512} a vector width (not wider than the machine offers); unset means the
 * widest the machine prefers. Fixing it in {@code static final} fields keeps the species constant
 * for the JIT, and lets tests run the whole suite once per width.
 */
public final class Simd {
    public static final String PROPERTY = "kvstash.vector.bits";
    /** Vector bit size in use, 0 when the scalar kernels are selected. */
    public static final int BITS = chooseBits();
    public static final boolean ENABLED = BITS > 0;
    /** Floats per vector. */
    public static final VectorSpecies<Float> F = ENABLED ? FloatVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(BITS)) : null;
    /** Ints with as many lanes as {@link #F}. */
    public static final VectorSpecies<Integer> I = ENABLED ? IntVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(BITS)) : null;
    /** Shorts with as many lanes as {@link #F} (half the bits). */
    public static final VectorSpecies<Short> S = ENABLED ? ShortVector.SPECIES_64.withShape(VectorShape.forBitSize(BITS / 2)) : null;
    /** Bytes loaded per step of the 8-bit kernels: 16 for 512-bit floats, else 8 (the smallest byte vector). */
    public static final VectorSpecies<Byte> B = ENABLED ? (BITS >= 512 ? ByteVector.SPECIES_128 : ByteVector.SPECIES_64) : null;
    public static final int FL = ENABLED ? F.length() : 1;
    public static final int BL = ENABLED ? B.length() : 1;
    /** Float vectors one byte vector of {@link #B} widens into. */
    public static final int PARTS = ENABLED ? BL / FL : 1;

    // Rotations by 8, 4, 2 and 1 lanes for sum(): lane i takes lane (i + k) mod FL.
    private static final VectorShuffle<Float> ROTATE_8 = ENABLED ? VectorShuffle.iota(F, 8, 1, true) : null;
    private static final VectorShuffle<Float> ROTATE_4 = ENABLED ? VectorShuffle.iota(F, 4, 1, true) : null;
    private static final VectorShuffle<Float> ROTATE_2 = ENABLED ? VectorShuffle.iota(F, 2, 1, true) : null;
    private static final VectorShuffle<Float> ROTATE_1 = ENABLED ? VectorShuffle.iota(F, 1, 1, true) : null;

    // Four vectors' lane sums in one vector (see the kernels that sum several accumulators at once):
    // HI_HALF / SWAP_HALVES pair lanes i and i ± FL/2, HI_QUARTER / SWAP_QUARTERS lanes i and i ^ FL/4,
    // XOR_2 / XOR_1 fold what is left of a quarter.
    static final VectorMask<Float> HI_HALF = ENABLED ? VectorMask.fromLong(F, ((1L << FL) - 1) & ~((1L << (FL / 2)) - 1)) : null;
    static final VectorShuffle<Float> SWAP_HALVES = ENABLED ? VectorShuffle.fromOp(F, i -> i ^ (FL / 2)) : null;
    static final VectorMask<Float> HI_QUARTER = ENABLED ? VectorMask.fromLong(F, quarterBits()) : null;
    static final VectorShuffle<Float> SWAP_QUARTERS = ENABLED ? VectorShuffle.fromOp(F, i -> i ^ (FL / 4)) : null;
    static final VectorShuffle<Float> XOR_2 = ENABLED && FL >= 16 ? VectorShuffle.fromOp(F, i -> i ^ 2) : null;
    static final VectorShuffle<Float> XOR_1 = ENABLED && FL >= 8 ? VectorShuffle.fromOp(F, i -> i ^ 1) : null;

    private Simd() {
    }

    /**
     * The sum of a vector's lanes in one fixed tree order. {@code reduceLanes(ADD)} on floats adds
     * in a different order once C2 compiles the caller than in the interpreter (seen here: the same
     * prompt gave different logits before and after warm-up), and stored KV and bit-identical
     * resumes need the same bits every time. Lane-wise adds of rotations give the same bits in every
     * tier. Written as a chain of methods under 35 bytecodes each, so that C2 inlines them even at
     * call sites it deems cold: a vector passed to a call that is not inlined is boxed.
     */
    public static float sum(FloatVector v) {
        return sum8(FL >= 16 ? v.add(v.rearrange(ROTATE_8)) : v);
    }

    /** The sum of {@code a[at .. at+FL)} in lane order: for kernels that spill a vector instead of calling {@link #sum}. */
    public static float sumLanes(float[] a, int at) {
        float s = 0f;
        for (int i = 0; i < FL; i++) {
            s += a[at + i];
        }
        return s;
    }

    private static float sum8(FloatVector v) {
        return sum4(FL >= 8 ? v.add(v.rearrange(ROTATE_4)) : v);
    }

    private static float sum4(FloatVector v) {
        return sum2(FL >= 4 ? v.add(v.rearrange(ROTATE_2)) : v);
    }

    private static float sum2(FloatVector v) {
        return v.add(v.rearrange(ROTATE_1)).lane(0);
    }

    /** Lanes whose index within their half is in the upper quarter: the mask of {@link #HI_QUARTER}. */
    private static long quarterBits() {
        long bits = 0;
        for (int i = 0; i < FL; i++) {
            if (i % (FL / 2) >= FL / 4) {
                bits |= 1L << i;
            }
        }
        return bits;
    }

    private static int chooseBits() {
        int preferred = FloatVector.SPECIES_PREFERRED.vectorBitSize();
        String forced = System.getProperty(PROPERTY);
        if (forced == null || forced.isBlank()) {
            return preferred >= 128 ? preferred : 0;
        }
        int bits;
        try {
            bits = Integer.parseInt(forced.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(PROPERTY + " must be 0, 128, 256 or 512, got '" + forced + "'");
        }
        if (bits != 0 && bits != 128 && bits != 256 && bits != 512) {
            throw new IllegalArgumentException(PROPERTY + " must be 0, 128, 256 or 512, got " + bits);
        }
        if (bits > preferred) {
            throw new IllegalArgumentException(PROPERTY + "=" + bits + " but this machine's widest vector is " + preferred + " bits");
        }
        return bits;
    }

    public static String describe() {
        return ENABLED ? BITS + "-bit (" + FL + " floats)" : "scalar";
    }
}
