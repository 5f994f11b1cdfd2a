package io.kvstash.engine.kv;

import io.kvstash.engine.kernel.Half;
import io.kvstash.engine.kernel.Simd;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;

/**
 * Seals a full F32 tail chunk into a quantized or half format, block by block, as
 * {@link ChunkLayout} lays it out. Runs once per chunk (every C tokens): each block is encoded
 * into heap arrays and copied into the chunk in bulk. Attention never decodes what it writes.
 * One encoder serves one sealing thread at a time.
 *
 * <p>KIVI groups are encoded with vectors (minimum and maximum of a group, then its codes) when
 * {@link Simd} is enabled: the codes and parameters are bit for bit those of the scalar path
 * ({@code simd = false}), which the tests check; keys are transposed first so that a group's
 * tokens are contiguous.
 */
final class ChunkEncoder {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final int G = KvFormat.GROUP;

    private final ChunkLayout from;
    private final ChunkLayout to;
    private final int c;
    private final int d;
    private final int ng;
    private final float[] block;   // (C, D) one block's F32 values
    private final float[] floats;  // Q8 scales
    private final short[] mins;    // KIVI mins, then scales
    private final short[] scales;
    private final byte[] codes;
    private final short[] halves;  // F16 values
    private final int[] slot;      // KIVI packing: token t's byte within its channel (t mod stride) ...
    private final int[] shift;     // ... and its bit offset there ((t div stride)·bits): no division per code
    private final boolean simd;
    private final float[] transposed; // (D, C) keys, for the vector path
    private final int[] groupCodes;   // one group's codes before packing

    ChunkEncoder(ChunkLayout from, ChunkLayout to) {
        this(from, to, Simd.ENABLED);
    }

    ChunkEncoder(ChunkLayout from, ChunkLayout to, boolean simd) {
        if (from.format() != KvFormat.F32) {
            throw new IllegalArgumentException("only F32 tails are sealed, got " + from.format());
        }
        this.from = from;
        this.to = to;
        KvGeometry g = from.geometry();
        this.c = g.chunkTokens();
        this.d = g.headDim();
        this.ng = (d + G - 1) / G;
        this.block = new float[c * d];
        this.floats = new float[c * ng];
        int params = Math.max(c / G * d, c * ng);
        this.mins = new short[params];
        this.scales = new short[params];
        this.codes = new byte[c * d];
        this.halves = to.format() == KvFormat.F16 ? new short[c * d] : new short[0];
        this.simd = simd && Simd.ENABLED;
        this.transposed = new float[c * d];
        this.groupCodes = new int[G];
        this.slot = new int[c];
        this.shift = new int[c];
        if (to.format() == KvFormat.KIVI4 || to.format() == KvFormat.KIVI2) {
            int bits = to.format().codeBits;
            int stride = c * bits / 8;
            for (int t = 0; t < c; t++) {
                slot[t] = t % stride;
                shift[t] = t / stride * bits;
            }
        }
    }

    void encode(KvChunk tail, KvChunk sealed) {
        KvGeometry g = from.geometry();
        MemorySegment out = sealed.data();
        for (int layer = 0; layer < g.layers(); layer++) {
            for (int head = 0; head < g.kvHeads(); head++) {
                for (int v = 0; v < 2; v++) {
                    boolean value = v == 1;
                    MemorySegment.copy(tail.data(), FLOAT, from.blockOffset(layer, value, head), block, 0, c * d);
                    long at = to.blockOffset(layer, value, head);
                    switch (to.format()) {
                        case F32 -> MemorySegment.copy(block, 0, out, FLOAT, at, c * d);
                        case F16 -> {
                            for (int i = 0; i < c * d; i++) {
                                halves[i] = Half.fromFloat(block[i]);
                            }
                            MemorySegment.copy(halves, 0, out, SHORT, at, c * d);
                        }
                        case Q8 -> {
                            encodeQ8(!value);
                            MemorySegment.copy(floats, 0, out, FLOAT, at, c * ng);
                            MemorySegment.copy(codes, 0, out, ValueLayout.JAVA_BYTE, at + to.codesOffset(value), c * d);
                        }
                        case KIVI4, KIVI2 -> {
                            int bits = to.format().codeBits;
                            int params = value ? encodeKiviValues(bits) : encodeKiviKeys(bits);
                            MemorySegment.copy(mins, 0, out, SHORT, at, params);
                            MemorySegment.copy(scales, 0, out, SHORT, at + to.scalesOffset(value), params);
                            MemorySegment.copy(codes, 0, out, ValueLayout.JAVA_BYTE, at + to.codesOffset(value), d * c * bits / 8);
                        }
                    }
                }
            }
        }
    }

    /**
     * Per token, per group of G channels: symmetric int8 with scale = max|x| / 127. Values are
     * token-major ({@code scale[C][NG]}, {@code code[C][D]}); keys are {@code channelMajor}
     * ({@code scale[NG][C]}, {@code code[D][C]}).
     */
    private void encodeQ8(boolean channelMajor) {
        for (int t = 0; t < c; t++) {
            for (int g = 0; g < ng; g++) {
                int lo = t * d + g * G;
                int hi = t * d + Math.min(d, g * G + G);
                float amax = 0f;
                for (int i = lo; i < hi; i++) {
                    amax = Math.max(amax, Math.abs(block[i]));
                }
                float scale = amax / 127f;
                float inv = scale > 0 ? 1f / scale : 0f;
                floats[channelMajor ? g * c + t : t * ng + g] = scale;
                for (int i = lo; i < hi; i++) {
                    byte code = (byte) Math.max(-127, Math.min(127, Math.round(block[i] * inv)));
                    codes[channelMajor ? (i - t * d) * c + t : i] = code;
                }
            }
        }
    }

    /**
     * Keys: per channel, per group of G tokens; returns the number of parameters written. Codes are
     * packed channel-major: byte j of a channel holds tokens j + k·stride at bits k·b.
     */
    private int encodeKiviKeys(int bits) {
        int levels = (1 << bits) - 1;
        int stride = c * bits / 8;
        Arrays.fill(codes, 0, d * stride, (byte) 0);
        if (simd) {
            for (int t = 0; t < c; t++) {
                for (int ch = 0; ch < d; ch++) {
                    transposed[ch * c + t] = block[t * d + ch];
                }
            }
            for (int g = 0; g < c / G; g++) {
                for (int ch = 0; ch < d; ch++) {
                    encodeGroup(transposed, ch * c + g * G, G, g * d + ch, levels);
                    for (int i = 0; i < G; i++) {
                        int t = g * G + i;
                        codes[ch * stride + slot[t]] |= (byte) (groupCodes[i] << shift[t]);
                    }
                }
            }
            return c / G * d;
        }
        for (int g = 0; g < c / G; g++) {
            for (int ch = 0; ch < d; ch++) {
                float min = Float.POSITIVE_INFINITY;
                float max = Float.NEGATIVE_INFINITY;
                for (int t = g * G; t < g * G + G; t++) {
                    min = Math.min(min, block[t * d + ch]);
                    max = Math.max(max, block[t * d + ch]);
                }
                int p = g * d + ch;
                setMinScale(p, min, max, levels);
                float m = Float.float16ToFloat(mins[p]);
                float s = Float.float16ToFloat(scales[p]);
                for (int t = g * G; t < g * G + G; t++) {
                    codes[ch * stride + slot[t]] |= (byte) (code(block[t * d + ch], m, s, levels) << shift[t]);
                }
            }
        }
        return c / G * d;
    }

    /** Values: per token, per group of G channels (the last may be shorter); parameters group-major. */
    private int encodeKiviValues(int bits) {
        int levels = (1 << bits) - 1;
        int stride = c * bits / 8;
        Arrays.fill(codes, 0, d * stride, (byte) 0);
        if (simd) {
            for (int t = 0; t < c; t++) {
                for (int g = 0; g < ng; g++) {
                    int lo = g * G;
                    int n = Math.min(d, lo + G) - lo;
                    encodeGroup(block, t * d + lo, n, g * c + t, levels);
                    for (int i = 0; i < n; i++) {
                        codes[(lo + i) * stride + slot[t]] |= (byte) (groupCodes[i] << shift[t]);
                    }
                }
            }
            return ng * c;
        }
        for (int t = 0; t < c; t++) {
            for (int g = 0; g < ng; g++) {
                int lo = g * G;
                int hi = Math.min(d, lo + G);
                float min = Float.POSITIVE_INFINITY;
                float max = Float.NEGATIVE_INFINITY;
                for (int i = lo; i < hi; i++) {
                    min = Math.min(min, block[t * d + i]);
                    max = Math.max(max, block[t * d + i]);
                }
                int p = g * c + t;
                setMinScale(p, min, max, levels);
                float m = Float.float16ToFloat(mins[p]);
                float s = Float.float16ToFloat(scales[p]);
                for (int i = lo; i < hi; i++) {
                    codes[i * stride + slot[t]] |= (byte) (code(block[t * d + i], m, s, levels) << shift[t]);
                }
            }
        }
        return ng * c;
    }

    /**
     * One group of {@code n} contiguous floats {@code x[at ..]}: its min and scale into parameter
     * {@code p}, its codes into {@code groupCodes[0 .. n)}. The same numbers as the scalar path:
     * minimum and maximum are exact in any order; a code is {@code Math.round((x − m) / s)} clamped
     * to {@code [0, levels]}, computed as trunc(y) plus one if y − trunc(y) ≥ ½, which for y ≥ 0 is
     * exactly round-half-up (and for y &lt; 0 clamps to 0 either way).
     */
    private void encodeGroup(float[] x, int at, int n, int p, int levels) {
        int bound = Simd.F.loopBound(n);
        FloatVector lo = FloatVector.broadcast(Simd.F, Float.POSITIVE_INFINITY);
        FloatVector hi = FloatVector.broadcast(Simd.F, Float.NEGATIVE_INFINITY);
        int i = 0;
        for (; i < bound; i += Simd.FL) {
            FloatVector v = FloatVector.fromArray(Simd.F, x, at + i);
            lo = lo.min(v);
            hi = hi.max(v);
        }
        float min = lo.reduceLanes(VectorOperators.MIN);
        float max = hi.reduceLanes(VectorOperators.MAX);
        for (; i < n; i++) {
            min = Math.min(min, x[at + i]);
            max = Math.max(max, x[at + i]);
        }
        setMinScale(p, min, max, levels);
        float m = Float.float16ToFloat(mins[p]);
        float s = Float.float16ToFloat(scales[p]);
        if (!(s > 0)) {
            Arrays.fill(groupCodes, 0, n, 0);
            return;
        }
        i = 0;
        for (; i < bound; i += Simd.FL) {
            FloatVector y = FloatVector.fromArray(Simd.F, x, at + i).sub(m).div(s);
            // Whole numbers below 2^24 stay exact as floats, so the rounding and clamping stay in
            // the float species (a mask cast between species is not compiled to vector code).
            FloatVector whole = (FloatVector) y.convert(VectorOperators.F2I, 0).convert(VectorOperators.I2F, 0);
            FloatVector code = whole.add(1f, y.sub(whole).compare(VectorOperators.GE, 0.5f)).max(0f).min(levels);
            ((IntVector) code.convert(VectorOperators.F2I, 0)).intoArray(groupCodes, i);
        }
        for (; i < n; i++) {
            groupCodes[i] = code(x[at + i], m, s, levels);
        }
    }

    /**
     * Min and scale as halves, saturated to the half range rather than infinite. Codes are then
     * computed against exactly the stored values, which attention will read.
     */
    private void setMinScale(int p, float min, float max, int levels) {
        int ms = minScale(min, max, levels);
        mins[p] = (short) (ms >>> 16);
        scales[p] = (short) ms;
    }

    /** The min (high half) and scale (low half) {@link #setMinScale} stores for a group spanning {@code [min, max]}. */
    private static int minScale(float min, float max, int levels) {
        short m16 = Half.fromFloat(Math.max(-65504f, Math.min(65504f, min)));
        float m = Float.float16ToFloat(m16);
        short s16 = Half.fromFloat(Math.min(65504f, (max - m) / levels));
        // Rounding the scale down would push the largest value past the top code; step up one ulp.
        if (Float.float16ToFloat(s16) * levels + m < max && Float.float16ToFloat(s16) < 65504f) {
            s16++;
        }
        return (m16 << 16) | (s16 & 0xffff);
    }

    /**
     * Encodes one head's keys, channel-major ({@code keys[ch·c + t]}, {@code c} positions of {@code d}
     * channels), as a KIVI key block of {@code bits}-bit codes at {@code out[at ..]}, laid out as
     * {@link ChunkLayout} documents ({@code scalesOff}, {@code codesOff} within the block): per channel
     * and group of G positions the min and scale {@link #encode} would store for these keys, and the
     * codes. Scalar: it runs once per chunk, for {@link KvChunk}'s key sketch.
     */
    static void encodeKiviKeys(float[] keys, int c, int d, int bits, MemorySegment out, long at, long scalesOff, long codesOff) {
        int levels = (1 << bits) - 1;
        int stride = c * bits / 8;
        long codes = at + codesOff;
        out.asSlice(codes, (long) d * stride).fill((byte) 0);
        for (int g = 0; g < c / G; g++) {
            for (int ch = 0; ch < d; ch++) {
                int from = ch * c + g * G;
                float min = Float.POSITIVE_INFINITY;
                float max = Float.NEGATIVE_INFINITY;
                for (int i = from; i < from + G; i++) {
                    min = Math.min(min, keys[i]);
                    max = Math.max(max, keys[i]);
                }
                int ms = minScale(min, max, levels);
                short m16 = (short) (ms >>> 16);
                short s16 = (short) ms;
                out.set(SHORT, at + 2L * (g * d + ch), m16);
                out.set(SHORT, at + scalesOff + 2L * (g * d + ch), s16);
                float m = Float.float16ToFloat(m16);
                float s = Float.float16ToFloat(s16);
                for (int t = g * G; t < g * G + G; t++) {
                    long b = codes + (long) ch * stride + t % stride;
                    int code = code(keys[ch * c + t], m, s, levels);
                    out.set(ValueLayout.JAVA_BYTE, b, (byte) (out.get(ValueLayout.JAVA_BYTE, b) | code << (t / stride * bits)));
                }
            }
        }
    }

    private static int code(float x, float m, float s, int levels) {
        if (!(s > 0)) {
            return 0;
        }
        return Math.max(0, Math.min(levels, Math.round((x - m) / s)));
    }

}
