package io.kvstash.engine.kv;

import io.kvstash.engine.kernel.Half;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * Seals a full F32 tail chunk into a quantized or half format, block by block, as
 * {@link ChunkLayout} lays it out. Runs once per chunk (every C tokens): each block is encoded
 * into heap arrays and copied into the chunk in bulk. Attention never decodes what it writes.
 * One encoder serves one sealing thread at a time.
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

    ChunkEncoder(ChunkLayout from, ChunkLayout to) {
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

    /** Keys: per channel, per group of G tokens; returns the number of parameters written. */
    private int encodeKiviKeys(int bits) {
        int levels = (1 << bits) - 1;
        int stride = c * bits / 8;
        Arrays.fill(codes, 0, d * stride, (byte) 0);
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
                    put(bits, stride, ch, t, code(block[t * d + ch], m, s, levels));
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
                    put(bits, stride, i, t, code(block[t * d + i], m, s, levels));
                }
            }
        }
        return ng * c;
    }

    /**
     * Min and scale as halves, saturated to the half range rather than infinite. Codes are then
     * computed against exactly the stored values, which attention will read.
     */
    private void setMinScale(int p, float min, float max, int levels) {
        short m16 = Half.fromFloat(Math.max(-65504f, Math.min(65504f, min)));
        float m = Float.float16ToFloat(m16);
        short s16 = Half.fromFloat(Math.min(65504f, (max - m) / levels));
        // Rounding the scale down would push the largest value past the top code; step up one ulp.
        if (Float.float16ToFloat(s16) * levels + m < max && Float.float16ToFloat(s16) < 65504f) {
            s16++;
        }
        mins[p] = m16;
        scales[p] = s16;
    }

    private static int code(float x, float m, float s, int levels) {
        if (!(s > 0)) {
            return 0;
        }
        return Math.max(0, Math.min(levels, Math.round((x - m) / s)));
    }

    /** Channel-major packing: byte j of a channel holds tokens j + k·stride at bits k·b. */
    private void put(int bits, int stride, int channel, int token, int code) {
        codes[channel * stride + token % stride] |= (byte) (code << (token / stride * bits));
    }
}
