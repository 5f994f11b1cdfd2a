package io.kvstash.engine.kernel;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;

/**
 * Attention directly on quantized KV blocks (layouts in {@code io.kvstash.engine.kv.ChunkLayout}):
 * query·key scores and the probability-weighted sum of values, read from the packed codes without
 * decoding a block into a float buffer. Each kernel has a scalar twin ({@code *Scalar}).
 *
 * <p>KIVI keys: {@code x = min[g][c] + scale[g][c]·code}, so a score is
 * {@code Σ_c q_c·min[g][c] + Σ_c (q_c·scale[g][c])·code}: per token group the products
 * {@code q ⊙ scale} and the constant {@code q · min} are computed once, then every channel adds
 * {@code (q⊙scale)_c · code} to a vector of tokens with one FMA. KIVI values:
 * {@code Σ_t p_t·(min[t][g] + scale[t][g]·code)}: per channel group the weights {@code p ⊙ scale}
 * and the constant {@code p · min} are computed once, then each channel is one dot product over tokens.
 */
public final class QuantizedKvKernels {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final int G = 32;

    private QuantizedKvKernels() {
    }

    private static float half(MemorySegment seg, long off) {
        return Float.float16ToFloat(seg.get(SHORT, off));
    }

    // ---------------------------------------------------------------- Q8

    /**
     * Q8 key block at {@code block} (channel-major codes, group-major scales; see
     * {@code ChunkLayout}): {@code out[outOff+t] = factor · Σ_g scale[g][t] · Σ_{c∈g} q_c·code[c][t]}
     * for t &lt; count. Tokens sit in vector lanes: one byte load per channel gives
     * {@link Simd#BL} tokens' codes, one FMA per channel and token vector, no horizontal reductions.
     * Every lane computes exactly the scalar twin's operations in its order (FMA chain per group,
     * then one FMA per group into the total), so both agree bit for bit.
     */
    public static void q8Scores(MemorySegment seg, long block, long codesOff, int chunkTokens, int d, float[] q, int qOff,
                                int count, float factor, float[] out, int outOff) {
        if (!Simd.ENABLED || chunkTokens % Simd.BL != 0) {
            q8ScoresScalar(seg, block, codesOff, chunkTokens, d, q, qOff, count, factor, out, outOff);
            return;
        }
        int ng = (d + G - 1) / G;
        int t0 = 0;
        for (int tb = 0; tb + Simd.BL <= chunkTokens && t0 + Simd.FL <= count; tb += Simd.BL) {
            for (int p = 0; p < Simd.PARTS && t0 + Simd.FL <= count; p++, t0 += Simd.FL) {
                FloatVector total = FloatVector.zero(Simd.F);
                for (int g = 0; g < ng; g++) {
                    int c0 = g * G;
                    int c1 = Math.min(d, c0 + G);
                    FloatVector acc = FloatVector.zero(Simd.F);
                    for (int c = c0; c < c1; c++) {
                        ByteVector b = ByteVector.fromMemorySegment(Simd.B, seg, block + codesOff + (long) c * chunkTokens + tb,
                                ByteOrder.LITTLE_ENDIAN);
                        acc = ((FloatVector) b.convertShape(VectorOperators.B2F, Simd.F, p)).fma(FloatVector.broadcast(Simd.F, q[qOff + c]), acc);
                    }
                    FloatVector scale = FloatVector.fromMemorySegment(Simd.F, seg, block + 4L * ((long) g * chunkTokens + t0),
                            ByteOrder.LITTLE_ENDIAN);
                    total = acc.fma(scale, total);
                }
                total.mul(factor).intoArray(out, outOff + t0);
            }
        }
        for (int t = t0; t < count; t++) {
            out[outOff + t] = q8Score(seg, block, codesOff, chunkTokens, d, q, qOff, t, ng) * factor;
        }
    }

    public static void q8ScoresScalar(MemorySegment seg, long block, long codesOff, int chunkTokens, int d, float[] q, int qOff,
                                      int count, float factor, float[] out, int outOff) {
        int ng = (d + G - 1) / G;
        for (int t = 0; t < count; t++) {
            out[outOff + t] = q8Score(seg, block, codesOff, chunkTokens, d, q, qOff, t, ng) * factor;
        }
    }

    /** One token's Q8 score before the factor, in the order every lane of {@link #q8Scores} computes it. */
    private static float q8Score(MemorySegment seg, long block, long codesOff, int chunkTokens, int d, float[] q, int qOff, int t, int ng) {
        float total = 0f;
        for (int g = 0; g < ng; g++) {
            float acc = 0f;
            for (int c = g * G; c < Math.min(d, g * G + G); c++) {
                acc = Math.fma((float) seg.get(ValueLayout.JAVA_BYTE, block + codesOff + (long) c * chunkTokens + t), q[qOff + c], acc);
            }
            total = Math.fma(acc, seg.get(FLOAT, block + 4L * ((long) g * chunkTokens + t)), total);
        }
        return total;
    }

    /**
     * Q8 values: {@code out[outOff + c] += Σ_t w[t]·scale[t][g(c)]·code[t][c]} for t &lt; count.
     * Channels in lanes, one {@link Simd#BL}-byte slice of channels at a time (within one group, as
     * G is a multiple of BL): the sum over tokens stays in registers and is added to {@code out}
     * once. Each output is the same FMA chain over tokens as in the scalar twin, then one add.
     */
    public static void q8AccumulateValues(MemorySegment seg, long block, long codesOff, int chunkTokens, int d, float[] w, int wOff,
                                          int count, float[] out, int outOff) {
        if (!Simd.ENABLED || G % Simd.BL != 0) {
            q8AccumulateValuesScalar(seg, block, codesOff, chunkTokens, d, w, wOff, count, out, outOff);
            return;
        }
        int ng = (d + G - 1) / G;
        int vectorised = d - d % Simd.BL;
        for (int c0 = 0; c0 < vectorised; c0 += Simd.BL) {
            long scales = block + 4L * (c0 / G);
            long codes = block + codesOff + c0;
            for (int p = 0; p < Simd.PARTS; p++) {
                FloatVector acc = FloatVector.zero(Simd.F);
                for (int t = 0; t < count; t++) {
                    float a = w[wOff + t] * seg.get(FLOAT, scales + 4L * t * ng);
                    ByteVector b = ByteVector.fromMemorySegment(Simd.B, seg, codes + (long) t * d, ByteOrder.LITTLE_ENDIAN);
                    acc = ((FloatVector) b.convertShape(VectorOperators.B2F, Simd.F, p)).fma(FloatVector.broadcast(Simd.F, a), acc);
                }
                int o = outOff + c0 + p * Simd.FL;
                acc.add(FloatVector.fromArray(Simd.F, out, o)).intoArray(out, o);
            }
        }
        for (int c = vectorised; c < d; c++) {
            out[outOff + c] += q8Value(seg, block, codesOff, d, w, wOff, count, ng, c);
        }
    }

    public static void q8AccumulateValuesScalar(MemorySegment seg, long block, long codesOff, int chunkTokens, int d, float[] w,
                                                int wOff, int count, float[] out, int outOff) {
        int ng = (d + G - 1) / G;
        for (int c = 0; c < d; c++) {
            out[outOff + c] += q8Value(seg, block, codesOff, d, w, wOff, count, ng, c);
        }
    }

    /** Channel {@code c}'s weighted sum over the tokens, in the order every lane of {@link #q8AccumulateValues} computes it. */
    private static float q8Value(MemorySegment seg, long block, long codesOff, int d, float[] w, int wOff, int count, int ng, int c) {
        float acc = 0f;
        for (int t = 0; t < count; t++) {
            float a = w[wOff + t] * seg.get(FLOAT, block + 4L * ((long) t * ng + c / G));
            acc = Math.fma((float) seg.get(ValueLayout.JAVA_BYTE, block + codesOff + (long) t * d + c), a, acc);
        }
        return acc;
    }

    // ---------------------------------------------------------------- KIVI

    /** Floats of scratch {@link #kiviScores} and {@link #kiviAccumulateValues} need. */
    public static int kiviScratchFloats(int chunkTokens, int d) {
        int ng = (d + G - 1) / G;
        // Plus one vector at the end for lane sums (see kiviAccumulateValues).
        return Math.max((chunkTokens / G) * (d + 1), ng * (chunkTokens + 1)) + Math.max(1, Simd.FL);
    }

    /**
     * Scores of all {@code chunkTokens} tokens of a KIVI key block:
     * {@code out[outOff + t] = factor · (q · key[t])}.
     *
     * @param minsOff  offset of {@code min[C/G][D]} (f16) in the block; scales follow at {@code scalesOff}
     */
    public static void kiviScores(int bits, MemorySegment seg, long block, long scalesOff, long codesOff, int chunkTokens, int d,
                                  float[] q, int qOff, float factor, float[] out, int outOff, float[] scratch) {
        int groups = chunkTokens / G;
        int qmAt = groups * d;
        if (!Simd.ENABLED) {
            prepareQueryScalar(seg, block, scalesOff, groups, d, q, qOff, scratch);
            kiviScoresFromScratch(bits, seg, block + codesOff, chunkTokens, d, factor, out, outOff, scratch);
            return;
        }
        // scratch: (q ⊙ scale) as [group][D], then q · min per group (as prepareQueryScalar); written
        // out here for the reason given in kiviAccumulateValues.
        {
            int bound = Simd.F.loopBound(d);
            for (int g = 0; g < groups; g++) {
                long mins = block + 2L * g * d;
                long scales = block + scalesOff + 2L * g * d;
                FloatVector qm = FloatVector.zero(Simd.F);
                int c = 0;
                for (; c < bound; c += Simd.FL) {
                    FloatVector qv = FloatVector.fromArray(Simd.F, q, qOff + c);
                    // Half → float written out here, not called: a vector passed to a method the JIT
                    // does not inline is boxed. Mins and scales are finite (the encoder saturates).
                    IntVector sh = (IntVector) ShortVector.fromMemorySegment(Simd.S, seg, scales + 2L * c, ByteOrder.LITTLE_ENDIAN)
                            .convertShape(VectorOperators.S2I, Simd.I, 0);
                    FloatVector sc = sh.and(0x7fff).lanewise(VectorOperators.LSHL, 13).reinterpretAsFloats().mul(0x1p112f)
                            .reinterpretAsInts().or(sh.and(0x8000).lanewise(VectorOperators.LSHL, 16)).reinterpretAsFloats();
                    IntVector mh = (IntVector) ShortVector.fromMemorySegment(Simd.S, seg, mins + 2L * c, ByteOrder.LITTLE_ENDIAN)
                            .convertShape(VectorOperators.S2I, Simd.I, 0);
                    FloatVector mn = mh.and(0x7fff).lanewise(VectorOperators.LSHL, 13).reinterpretAsFloats().mul(0x1p112f)
                            .reinterpretAsInts().or(mh.and(0x8000).lanewise(VectorOperators.LSHL, 16)).reinterpretAsFloats();
                    qv.mul(sc).intoArray(scratch, g * d + c);
                    qm = qv.fma(mn, qm);
                }
                float sum = Simd.sum(qm);
                for (; c < d; c++) {
                    float qc = q[qOff + c];
                    scratch[g * d + c] = qc * half(seg, scales + 2L * c);
                    sum += qc * half(seg, mins + 2L * c);
                }
                scratch[qmAt + g] = sum;
            }
        }
        if (bits == 4) {
            kiviScoreCodes4(seg, block + codesOff, chunkTokens, d, factor, out, outOff, scratch);
        } else {
            kiviScoreCodes2(seg, block + codesOff, chunkTokens, d, factor, out, outOff, scratch);
        }
    }

    // ---- The code loops of the KIVI kernels, one per code width: shifts and masks are constants,
    // the codes of a byte are unrolled, and as methods of their own (C2 does not inline one this
    // big) they get registers for their accumulators. Inlined into the kernel with its scale
    // preparation, the 4-bit value loop kept its accumulators on the stack, a store and a reload
    // around every FMA. Codes are zero-extended, so the top code of a byte needs no mask. Every
    // lane adds its channels (keys) or tokens (values) in the order it did before.

    /** Lane offset, in floats' worth of bytes, of the codes at byte {@code j} inside their load: 0 unless bytes outnumber float lanes. */
    private static int part(int j) {
        return Simd.PARTS == 1 ? 0 : (j % Simd.BL) / Simd.FL;
    }

    /** Where the load holding the codes at byte {@code j} starts. */
    private static int loadAt(int j) {
        return Simd.PARTS == 1 ? j : j - j % Simd.BL;
    }

    /**
     * 4-bit key codes: byte j of a channel holds tokens j (low nibble) and j + S (high). Two vectors
     * of bytes per pass where the channel has them, so that four FMA chains overlap.
     */
    private static void kiviScoreCodes4(MemorySegment seg, long codes, int chunkTokens, int d, float factor, float[] out, int outOff,
                                        float[] scratch) {
        int stride = chunkTokens / 2;
        int qmAt = (chunkTokens / G) * d;
        int j = 0;
        for (; j + Simd.FL < stride; j += 2 * Simd.FL) {
            int j1 = j + Simd.FL;
            int lo0 = (j / G) * d;
            int hi0 = ((j + stride) / G) * d;
            int lo1 = (j1 / G) * d;
            int hi1 = ((j1 + stride) / G) * d;
            long at0 = codes + loadAt(j);
            long at1 = codes + loadAt(j1);
            int part0 = part(j);
            int part1 = part(j1);
            FloatVector a0 = FloatVector.zero(Simd.F);
            FloatVector a1 = a0;
            FloatVector a2 = a0;
            FloatVector a3 = a0;
            for (int c = 0; c < d; c++) {
                long ch = (long) c * stride;
                IntVector v = (IntVector) ByteVector.fromMemorySegment(Simd.B, seg, at0 + ch, ByteOrder.LITTLE_ENDIAN)
                        .convertShape(VectorOperators.ZERO_EXTEND_B2I, Simd.I, part0);
                IntVector u = (IntVector) ByteVector.fromMemorySegment(Simd.B, seg, at1 + ch, ByteOrder.LITTLE_ENDIAN)
                        .convertShape(VectorOperators.ZERO_EXTEND_B2I, Simd.I, part1);
                a0 = ((FloatVector) v.and(15).convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(Simd.F, scratch[lo0 + c]), a0);
                a1 = ((FloatVector) v.lanewise(VectorOperators.LSHR, 4).convert(VectorOperators.I2F, 0))
                        .fma(FloatVector.broadcast(Simd.F, scratch[hi0 + c]), a1);
                a2 = ((FloatVector) u.and(15).convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(Simd.F, scratch[lo1 + c]), a2);
                a3 = ((FloatVector) u.lanewise(VectorOperators.LSHR, 4).convert(VectorOperators.I2F, 0))
                        .fma(FloatVector.broadcast(Simd.F, scratch[hi1 + c]), a3);
            }
            a0.add(scratch[qmAt + j / G]).mul(factor).intoArray(out, outOff + j);
            a1.add(scratch[qmAt + (j + stride) / G]).mul(factor).intoArray(out, outOff + j + stride);
            a2.add(scratch[qmAt + j1 / G]).mul(factor).intoArray(out, outOff + j1);
            a3.add(scratch[qmAt + (j1 + stride) / G]).mul(factor).intoArray(out, outOff + j1 + stride);
        }
        for (; j < stride; j += Simd.FL) {
            int lo = (j / G) * d;
            int hi = ((j + stride) / G) * d;
            long at = codes + loadAt(j);
            int part = part(j);
            FloatVector a0 = FloatVector.zero(Simd.F);
            FloatVector a1 = a0;
            for (int c = 0; c < d; c++) {
                IntVector v = (IntVector) ByteVector.fromMemorySegment(Simd.B, seg, at + (long) c * stride, ByteOrder.LITTLE_ENDIAN)
                        .convertShape(VectorOperators.ZERO_EXTEND_B2I, Simd.I, part);
                a0 = ((FloatVector) v.and(15).convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(Simd.F, scratch[lo + c]), a0);
                a1 = ((FloatVector) v.lanewise(VectorOperators.LSHR, 4).convert(VectorOperators.I2F, 0))
                        .fma(FloatVector.broadcast(Simd.F, scratch[hi + c]), a1);
            }
            a0.add(scratch[qmAt + j / G]).mul(factor).intoArray(out, outOff + j);
            a1.add(scratch[qmAt + (j + stride) / G]).mul(factor).intoArray(out, outOff + j + stride);
        }
    }

    /** 2-bit key codes: byte j of a channel holds tokens j + k·S in bits [2k, 2k+2), k = 0..3. */
    private static void kiviScoreCodes2(MemorySegment seg, long codes, int chunkTokens, int d, float factor, float[] out, int outOff,
                                        float[] scratch) {
        int stride = chunkTokens / 4;
        int qmAt = (chunkTokens / G) * d;
        for (int j = 0; j < stride; j += Simd.FL) {
            int g0 = (j / G) * d;
            int g1 = ((j + stride) / G) * d;
            int g2 = ((j + 2 * stride) / G) * d;
            int g3 = ((j + 3 * stride) / G) * d;
            long at = codes + loadAt(j);
            int part = part(j);
            FloatVector a0 = FloatVector.zero(Simd.F);
            FloatVector a1 = a0;
            FloatVector a2 = a0;
            FloatVector a3 = a0;
            for (int c = 0; c < d; c++) {
                IntVector v = (IntVector) ByteVector.fromMemorySegment(Simd.B, seg, at + (long) c * stride, ByteOrder.LITTLE_ENDIAN)
                        .convertShape(VectorOperators.ZERO_EXTEND_B2I, Simd.I, part);
                a0 = ((FloatVector) v.and(3).convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(Simd.F, scratch[g0 + c]), a0);
                a1 = ((FloatVector) v.lanewise(VectorOperators.LSHR, 2).and(3).convert(VectorOperators.I2F, 0))
                        .fma(FloatVector.broadcast(Simd.F, scratch[g1 + c]), a1);
                a2 = ((FloatVector) v.lanewise(VectorOperators.LSHR, 4).and(3).convert(VectorOperators.I2F, 0))
                        .fma(FloatVector.broadcast(Simd.F, scratch[g2 + c]), a2);
                a3 = ((FloatVector) v.lanewise(VectorOperators.LSHR, 6).convert(VectorOperators.I2F, 0))
                        .fma(FloatVector.broadcast(Simd.F, scratch[g3 + c]), a3);
            }
            a0.add(scratch[qmAt + j / G]).mul(factor).intoArray(out, outOff + j);
            a1.add(scratch[qmAt + (j + stride) / G]).mul(factor).intoArray(out, outOff + j + stride);
            a2.add(scratch[qmAt + (j + 2 * stride) / G]).mul(factor).intoArray(out, outOff + j + 2 * stride);
            a3.add(scratch[qmAt + (j + 3 * stride) / G]).mul(factor).intoArray(out, outOff + j + 3 * stride);
        }
    }

    /** The scalar twin of {@link #kiviScores}'s code loop (the scratch is prepared identically). */
    public static void kiviScoresScalar(int bits, MemorySegment seg, long block, long scalesOff, long codesOff, int chunkTokens,
                                        int d, float[] q, int qOff, float factor, float[] out, int outOff, float[] scratch) {
        prepareQueryScalar(seg, block, scalesOff, chunkTokens / G, d, q, qOff, scratch);
        kiviScoresFromScratch(bits, seg, block + codesOff, chunkTokens, d, factor, out, outOff, scratch);
    }

    /** scratch: (q ⊙ scale) as [group][D], then q · min per group; mins at the block start, scales at scalesOff. */
    private static void prepareQueryScalar(MemorySegment seg, long block, long scalesOff, int groups, int d, float[] q, int qOff,
                                           float[] scratch) {
        int qmAt = groups * d;
        for (int g = 0; g < groups; g++) {
            float qm = 0f;
            for (int c = 0; c < d; c++) {
                long at = (long) g * d + c;
                float qc = q[qOff + c];
                scratch[g * d + c] = qc * half(seg, block + scalesOff + 2 * at);
                qm += qc * half(seg, block + 2 * at);
            }
            scratch[qmAt + g] = qm;
        }
    }

    private static void kiviScoresFromScratch(int bits, MemorySegment seg, long codes, int chunkTokens, int d, float factor,
                                              float[] out, int outOff, float[] scratch) {
        int groups = chunkTokens / G;
        int qmAt = groups * d;
        for (int t = 0; t < chunkTokens; t++) {
            int g = t / G;
            float sum = 0f;
            for (int c = 0; c < d; c++) {
                sum += scratch[g * d + c] * kiviCode(bits, seg, codes, chunkTokens, c, t);
            }
            out[outOff + t] = factor * (sum + scratch[qmAt + g]);
        }
    }

    /** The code of token t, channel c in a channel-major packed KIVI code array. */
    public static int kiviCode(int bits, MemorySegment seg, long codes, int chunkTokens, int c, int t) {
        int stride = chunkTokens * bits / 8;
        int b = seg.get(ValueLayout.JAVA_BYTE, codes + (long) c * stride + t % stride) & 0xFF;
        return (b >>> (t / stride * bits)) & ((1 << bits) - 1);
    }

    /**
     * Adds {@code Σ_t w[wOff+t] · value[t]} over all {@code chunkTokens} tokens of a KIVI value block
     * to {@code out[outOff .. +d)}.
     */
    public static void kiviAccumulateValues(int bits, MemorySegment seg, long block, long scalesOff, long codesOff, int chunkTokens,
                                            int d, float[] w, int wOff, float[] out, int outOff, float[] scratch) {
        int ng = (d + G - 1) / G;
        if (!Simd.ENABLED) {
            prepareValueWeights(seg, block, scalesOff, chunkTokens, ng, w, wOff, scratch);
            kiviValuesFromScratch(bits, seg, block + codesOff, chunkTokens, d, out, outOff, scratch);
            return;
        }
        // scratch: (w ⊙ scale) as [group][C], then w · min per group (as prepareValueWeights). Written
        // out here: as a method of its own C2 sometimes never compiled it, and the interpreted or C1
        // vector code then allocated tens of KB per token.
        {
            int mgAt = ng * chunkTokens;
            for (int g = 0; g < ng; g++) {
                long mins = block + 2L * g * chunkTokens;
                long scales = block + scalesOff + 2L * g * chunkTokens;
                FloatVector mg = FloatVector.zero(Simd.F);
                // chunkTokens is a multiple of 32 for KIVI, so whole vectors cover it.
                for (int t = 0; t < chunkTokens; t += Simd.FL) {
                    FloatVector wv = FloatVector.fromArray(Simd.F, w, wOff + t);
                    IntVector sh = (IntVector) ShortVector.fromMemorySegment(Simd.S, seg, scales + 2L * t, ByteOrder.LITTLE_ENDIAN)
                            .convertShape(VectorOperators.S2I, Simd.I, 0);
                    FloatVector sc = sh.and(0x7fff).lanewise(VectorOperators.LSHL, 13).reinterpretAsFloats().mul(0x1p112f)
                            .reinterpretAsInts().or(sh.and(0x8000).lanewise(VectorOperators.LSHL, 16)).reinterpretAsFloats();
                    IntVector mh = (IntVector) ShortVector.fromMemorySegment(Simd.S, seg, mins + 2L * t, ByteOrder.LITTLE_ENDIAN)
                            .convertShape(VectorOperators.S2I, Simd.I, 0);
                    FloatVector mn = mh.and(0x7fff).lanewise(VectorOperators.LSHL, 13).reinterpretAsFloats().mul(0x1p112f)
                            .reinterpretAsInts().or(mh.and(0x8000).lanewise(VectorOperators.LSHL, 16)).reinterpretAsFloats();
                    wv.mul(sc).intoArray(scratch, g * chunkTokens + t);
                    mg = wv.fma(mn, mg);
                }
                scratch[mgAt + g] = Simd.sum(mg);
            }
        }
        kiviValueCodes(bits, seg, block + codesOff, chunkTokens, d, out, outOff, scratch);
    }

    /**
     * The value code loop: per channel a dot product over the tokens with the weights (w ⊙ scale) in
     * scratch. Four channels per pass (one group: G is a multiple of 4): they share the weight loads,
     * their FMA chains overlap, and their four lane sums come out of one tree of lane-wise adds
     * (see Simd.HI_HALF) instead of four sums.
     */
    private static void kiviValueCodes(int bits, MemorySegment seg, long codes, int chunkTokens, int d, float[] out, int outOff,
                                       float[] scratch) {
        int ng = (d + G - 1) / G;
        int stride = chunkTokens * bits / 8;
        int mgAt = ng * chunkTokens;
        int lanes = scratch.length - Simd.FL;
        int c = 0;
        for (; c + 3 < d; c += 4) {
            int g = c / G;
            int wb = g * chunkTokens;
            long ch0 = codes + (long) c * stride;
            FloatVector acc0 = FloatVector.zero(Simd.F);
            FloatVector acc1 = acc0;
            FloatVector acc2 = acc0;
            FloatVector acc3 = acc0;
            if (bits == 4) {
                for (int j = 0; j < stride; j += Simd.FL) {
                    long at = ch0 + loadAt(j);
                    int part = part(j);
                    IntVector v0 = (IntVector) ByteVector.fromMemorySegment(Simd.B, seg, at, ByteOrder.LITTLE_ENDIAN)
                            .convertShape(VectorOperators.ZERO_EXTEND_B2I, Simd.I, part);
                    IntVector v1 = (IntVector) ByteVector.fromMemorySegment(Simd.B, seg, at + stride, ByteOrder.LITTLE_ENDIAN)
                            .convertShape(VectorOperators.ZERO_EXTEND_B2I, Simd.I, part);
                    IntVector v2 = (IntVector) ByteVector.fromMemorySegment(Simd.B, seg, at + 2L * stride, ByteOrder.LITTLE_ENDIAN)
                            .convertShape(VectorOperators.ZERO_EXTEND_B2I, Simd.I, part);
                    IntVector v3 = (IntVector) ByteVector.fromMemorySegment(Simd.B, seg, at + 3L * stride, ByteOrder.LITTLE_ENDIAN)
                            .convertShape(VectorOperators.ZERO_EXTEND_B2I, Simd.I, part);
                    FloatVector w0 = FloatVector.fromArray(Simd.F, scratch, wb + j);
                    acc0 = ((FloatVector) v0.and(15).convert(VectorOperators.I2F, 0)).fma(w0, acc0);
                    acc1 = ((FloatVector) v1.and(15).convert(VectorOperators.I2F, 0)).fma(w0, acc1);
                    acc2 = ((FloatVector) v2.and(15).convert(VectorOperators.I2F, 0)).fma(w0, acc2);
                    acc3 = ((FloatVector) v3.and(15).convert(VectorOperators.I2F, 0)).fma(w0, acc3);
                    FloatVector w1 = FloatVector.fromArray(Simd.F, scratch, wb + stride + j);
                    acc0 = ((FloatVector) v0.lanewise(VectorOperators.LSHR, 4).convert(VectorOperators.I2F, 0)).fma(w1, acc0);
                    acc1 = ((FloatVector) v1.lanewise(VectorOperators.LSHR, 4).convert(VectorOperators.I2F, 0)).fma(w1, acc1);
                    acc2 = ((FloatVector) v2.lanewise(VectorOperators.LSHR, 4).convert(VectorOperators.I2F, 0)).fma(w1, acc2);
                    acc3 = ((FloatVector) v3.lanewise(VectorOperators.LSHR, 4).convert(VectorOperators.I2F, 0)).fma(w1, acc3);
                }
            } else {
                for (int j = 0; j < stride; j += Simd.FL) {
                    long at = ch0 + loadAt(j);
                    int part = part(j);
                    IntVector v0 = (IntVector) ByteVector.fromMemorySegment(Simd.B, seg, at, ByteOrder.LITTLE_ENDIAN)
                            .convertShape(VectorOperators.ZERO_EXTEND_B2I, Simd.I, part);
                    IntVector v1 = (IntVector) ByteVector.fromMemorySegment(Simd.B, seg, at + stride, ByteOrder.LITTLE_ENDIAN)
                            .convertShape(VectorOperators.ZERO_EXTEND_B2I, Simd.I, part);
                    IntVector v2 = (IntVector) ByteVector.fromMemorySegment(Simd.B, seg, at + 2L * stride, ByteOrder.LITTLE_ENDIAN)
                            .convertShape(VectorOperators.ZERO_EXTEND_B2I, Simd.I, part);
                    IntVector v3 = (IntVector) ByteVector.fromMemorySegment(Simd.B, seg, at + 3L * stride, ByteOrder.LITTLE_ENDIAN)
                            .convertShape(VectorOperators.ZERO_EXTEND_B2I, Simd.I, part);
                    FloatVector w0 = FloatVector.fromArray(Simd.F, scratch, wb + j);
                    acc0 = ((FloatVector) v0.and(3).convert(VectorOperators.I2F, 0)).fma(w0, acc0);
                    acc1 = ((FloatVector) v1.and(3).convert(VectorOperators.I2F, 0)).fma(w0, acc1);
                    acc2 = ((FloatVector) v2.and(3).convert(VectorOperators.I2F, 0)).fma(w0, acc2);
                    acc3 = ((FloatVector) v3.and(3).convert(VectorOperators.I2F, 0)).fma(w0, acc3);
                    FloatVector w1 = FloatVector.fromArray(Simd.F, scratch, wb + stride + j);
                    acc0 = ((FloatVector) v0.lanewise(VectorOperators.LSHR, 2).and(3).convert(VectorOperators.I2F, 0)).fma(w1, acc0);
                    acc1 = ((FloatVector) v1.lanewise(VectorOperators.LSHR, 2).and(3).convert(VectorOperators.I2F, 0)).fma(w1, acc1);
                    acc2 = ((FloatVector) v2.lanewise(VectorOperators.LSHR, 2).and(3).convert(VectorOperators.I2F, 0)).fma(w1, acc2);
                    acc3 = ((FloatVector) v3.lanewise(VectorOperators.LSHR, 2).and(3).convert(VectorOperators.I2F, 0)).fma(w1, acc3);
                    FloatVector w2 = FloatVector.fromArray(Simd.F, scratch, wb + 2 * stride + j);
                    acc0 = ((FloatVector) v0.lanewise(VectorOperators.LSHR, 4).and(3).convert(VectorOperators.I2F, 0)).fma(w2, acc0);
                    acc1 = ((FloatVector) v1.lanewise(VectorOperators.LSHR, 4).and(3).convert(VectorOperators.I2F, 0)).fma(w2, acc1);
                    acc2 = ((FloatVector) v2.lanewise(VectorOperators.LSHR, 4).and(3).convert(VectorOperators.I2F, 0)).fma(w2, acc2);
                    acc3 = ((FloatVector) v3.lanewise(VectorOperators.LSHR, 4).and(3).convert(VectorOperators.I2F, 0)).fma(w2, acc3);
                    FloatVector w3 = FloatVector.fromArray(Simd.F, scratch, wb + 3 * stride + j);
                    acc0 = ((FloatVector) v0.lanewise(VectorOperators.LSHR, 6).convert(VectorOperators.I2F, 0)).fma(w3, acc0);
                    acc1 = ((FloatVector) v1.lanewise(VectorOperators.LSHR, 6).convert(VectorOperators.I2F, 0)).fma(w3, acc1);
                    acc2 = ((FloatVector) v2.lanewise(VectorOperators.LSHR, 6).convert(VectorOperators.I2F, 0)).fma(w3, acc2);
                    acc3 = ((FloatVector) v3.lanewise(VectorOperators.LSHR, 6).convert(VectorOperators.I2F, 0)).fma(w3, acc3);
                }
            }
            // Halves: lanes below FL/2 sum acc0, above acc1 (and acc2, acc3 in p23).
            FloatVector p01 = acc0.blend(acc1, Simd.HI_HALF).add(acc1.blend(acc0, Simd.HI_HALF).rearrange(Simd.SWAP_HALVES));
            FloatVector p23 = acc2.blend(acc3, Simd.HI_HALF).add(acc3.blend(acc2, Simd.HI_HALF).rearrange(Simd.SWAP_HALVES));
            // Quarters, in lane order: acc0, acc2, acc1, acc3.
            FloatVector s4 = p01.blend(p23, Simd.HI_QUARTER).add(p23.blend(p01, Simd.HI_QUARTER).rearrange(Simd.SWAP_QUARTERS));
            if (Simd.FL >= 16) {
                s4 = s4.add(s4.rearrange(Simd.XOR_2));
            }
            if (Simd.FL >= 8) {
                s4 = s4.add(s4.rearrange(Simd.XOR_1));
            }
            float mg = scratch[mgAt + g];
            out[outOff + c] += s4.lane(0) + mg;
            out[outOff + c + 1] += s4.lane(Simd.FL / 2) + mg;
            out[outOff + c + 2] += s4.lane(Simd.FL / 4) + mg;
            out[outOff + c + 3] += s4.lane(3 * Simd.FL / 4) + mg;
        }
        int perByte = 8 / bits;
        int mask = (1 << bits) - 1;
        for (; c < d; c++) {
            int g = c / G;
            int wBase = g * chunkTokens;
            long channel = codes + (long) c * stride;
            FloatVector acc = FloatVector.zero(Simd.F);
            for (int j = 0; j < stride; j += Simd.FL) {
                IntVector v = (IntVector) ByteVector.fromMemorySegment(Simd.B, seg, channel + loadAt(j), ByteOrder.LITTLE_ENDIAN)
                        .convertShape(VectorOperators.B2I, Simd.I, part(j));
                for (int k = 0; k < perByte; k++) {
                    FloatVector code = (FloatVector) v.lanewise(VectorOperators.LSHR, k * bits).and(mask).convert(VectorOperators.I2F, 0);
                    acc = code.fma(FloatVector.fromArray(Simd.F, scratch, wBase + k * stride + j), acc);
                }
            }
            acc.intoArray(scratch, lanes);
            out[outOff + c] += Simd.sumLanes(scratch, lanes) + scratch[mgAt + g];
        }
    }

    public static void kiviAccumulateValuesScalar(int bits, MemorySegment seg, long block, long scalesOff, long codesOff,
                                                  int chunkTokens, int d, float[] w, int wOff, float[] out, int outOff, float[] scratch) {
        int ng = (d + G - 1) / G;
        prepareValueWeights(seg, block, scalesOff, chunkTokens, ng, w, wOff, scratch);
        kiviValuesFromScratch(bits, seg, block + codesOff, chunkTokens, d, out, outOff, scratch);
    }

    /** scratch: (w ⊙ scale) as [group][C], then w · min per group; parameters are group-major [NG][C]. */
    private static void prepareValueWeights(MemorySegment seg, long block, long scalesOff, int chunkTokens, int ng, float[] w, int wOff,
                                            float[] scratch) {
        int mgAt = ng * chunkTokens;
        for (int g = 0; g < ng; g++) {
            float mg = 0f;
            for (int t = 0; t < chunkTokens; t++) {
                long at = (long) g * chunkTokens + t;
                float wt = w[wOff + t];
                scratch[g * chunkTokens + t] = wt * half(seg, block + scalesOff + 2 * at);
                mg += wt * half(seg, block + 2 * at);
            }
            scratch[mgAt + g] = mg;
        }
    }

    private static void kiviValuesFromScratch(int bits, MemorySegment seg, long codes, int chunkTokens, int d, float[] out, int outOff,
                                              float[] scratch) {
        int ng = (d + G - 1) / G;
        int mgAt = ng * chunkTokens;
        for (int c = 0; c < d; c++) {
            int g = c / G;
            float sum = 0f;
            for (int t = 0; t < chunkTokens; t++) {
                sum += scratch[g * chunkTokens + t] * kiviCode(bits, seg, codes, chunkTokens, c, t);
            }
            out[outOff + c] += sum + scratch[mgAt + g];
        }
    }
}
