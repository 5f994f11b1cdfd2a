package io.kvstash.engine.kv;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Seals a full F32 tail chunk into a quantized or half format, block by block, as
 * {@link ChunkLayout} lays it out. Runs once per chunk (every C tokens), so it is plain scalar
 * code; attention never decodes what it writes.
 */
final class ChunkEncoder {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final int G = KvFormat.GROUP;

    private ChunkEncoder() {
    }

    static void encode(KvChunk tail, KvChunk sealed) {
        ChunkLayout from = tail.layout();
        ChunkLayout to = sealed.layout();
        if (from.format() != KvFormat.F32) {
            throw new IllegalArgumentException("only F32 tails are sealed, got " + from.format());
        }
        KvGeometry g = from.geometry();
        int c = g.chunkTokens();
        int d = g.headDim();
        float[] block = new float[c * d];
        for (int layer = 0; layer < g.layers(); layer++) {
            for (int head = 0; head < g.kvHeads(); head++) {
                for (boolean value : new boolean[] {false, true}) {
                    MemorySegment.copy(tail.data(), FLOAT, from.blockOffset(layer, value, head), block, 0, c * d);
                    long at = to.blockOffset(layer, value, head);
                    MemorySegment out = sealed.data();
                    switch (to.format()) {
                        case F32 -> MemorySegment.copy(block, 0, out, FLOAT, at, c * d);
                        case F16 -> {
                            for (int i = 0; i < c * d; i++) {
                                out.set(SHORT, at + 2L * i, Float.floatToFloat16(block[i]));
                            }
                        }
                        case Q8 -> encodeQ8(block, c, d, out, at, to.codesOffset(value));
                        case KIVI4, KIVI2 -> {
                            if (value) {
                                encodeKiviValues(to.format().codeBits, block, c, d, out, at, to.scalesOffset(true), to.codesOffset(true));
                            } else {
                                encodeKiviKeys(to.format().codeBits, block, c, d, out, at, to.scalesOffset(false), to.codesOffset(false));
                            }
                        }
                    }
                }
            }
        }
    }

    /** Per token, per group of G channels: symmetric int8 with scale = max|x| / 127. */
    private static void encodeQ8(float[] x, int c, int d, MemorySegment out, long at, long codesOff) {
        int ng = (d + G - 1) / G;
        for (int t = 0; t < c; t++) {
            for (int g = 0; g < ng; g++) {
                int lo = g * G;
                int hi = Math.min(d, lo + G);
                float amax = 0f;
                for (int i = lo; i < hi; i++) {
                    amax = Math.max(amax, Math.abs(x[t * d + i]));
                }
                float scale = amax / 127f;
                float inv = scale > 0 ? 1f / scale : 0f;
                out.set(FLOAT, at + 4L * (t * ng + g), scale);
                for (int i = lo; i < hi; i++) {
                    int q = Math.round(x[t * d + i] * inv);
                    out.set(ValueLayout.JAVA_BYTE, at + codesOff + (long) t * d + i, (byte) Math.max(-127, Math.min(127, q)));
                }
            }
        }
    }

    /** Keys: per channel, per group of G tokens; min and scale as halves, codes packed channel-major. */
    private static void encodeKiviKeys(int bits, float[] x, int c, int d, MemorySegment out, long at, long scalesOff, long codesOff) {
        int levels = (1 << bits) - 1;
        int groups = c / G;
        clearCodes(out, at + codesOff, (long) d * c * bits / 8);
        for (int g = 0; g < groups; g++) {
            for (int ch = 0; ch < d; ch++) {
                float min = Float.POSITIVE_INFINITY;
                float max = Float.NEGATIVE_INFINITY;
                for (int t = g * G; t < g * G + G; t++) {
                    min = Math.min(min, x[t * d + ch]);
                    max = Math.max(max, x[t * d + ch]);
                }
                long param = 2L * ((long) g * d + ch);
                float[] ms = storeMinScale(out, at + param, at + scalesOff + param, min, max, levels);
                for (int t = g * G; t < g * G + G; t++) {
                    putCode(bits, out, at + codesOff, c, ch, t, code(x[t * d + ch], ms, levels));
                }
            }
        }
    }

    /** Values: per token, per group of G channels (the last may be shorter). */
    private static void encodeKiviValues(int bits, float[] x, int c, int d, MemorySegment out, long at, long scalesOff, long codesOff) {
        int levels = (1 << bits) - 1;
        int ng = (d + G - 1) / G;
        clearCodes(out, at + codesOff, (long) d * c * bits / 8);
        for (int t = 0; t < c; t++) {
            for (int g = 0; g < ng; g++) {
                int lo = g * G;
                int hi = Math.min(d, lo + G);
                float min = Float.POSITIVE_INFINITY;
                float max = Float.NEGATIVE_INFINITY;
                for (int i = lo; i < hi; i++) {
                    min = Math.min(min, x[t * d + i]);
                    max = Math.max(max, x[t * d + i]);
                }
                long param = 2L * ((long) t * ng + g);
                float[] ms = storeMinScale(out, at + param, at + scalesOff + param, min, max, levels);
                for (int i = lo; i < hi; i++) {
                    putCode(bits, out, at + codesOff, c, i, t, code(x[t * d + i], ms, levels));
                }
            }
        }
    }

    /**
     * Stores min and scale as halves and returns the values as stored, so codes are computed against
     * exactly what attention will read. Saturates at the half range rather than storing infinities.
     */
    private static float[] storeMinScale(MemorySegment out, long minAt, long scaleAt, float min, float max, int levels) {
        short m16 = Float.floatToFloat16(Math.max(-65504f, Math.min(65504f, min)));
        float m = Float.float16ToFloat(m16);
        float scale = Math.min(65504f, (max - m) / levels);
        short s16 = Float.floatToFloat16(scale);
        float s = Float.float16ToFloat(s16);
        // Rounding the scale down would push the largest value past the top code; step up one ulp.
        if (s * levels + m < max && s < 65504f) {
            s16 = (short) (s16 + 1);
            s = Float.float16ToFloat(s16);
        }
        out.set(SHORT, minAt, m16);
        out.set(SHORT, scaleAt, s16);
        return new float[] {m, s};
    }

    private static int code(float x, float[] minScale, int levels) {
        float s = minScale[1];
        if (!(s > 0)) {
            return 0;
        }
        return Math.max(0, Math.min(levels, Math.round((x - minScale[0]) / s)));
    }

    private static void clearCodes(MemorySegment out, long at, long bytes) {
        out.asSlice(at, bytes).fill((byte) 0);
    }

    private static void putCode(int bits, MemorySegment out, long codes, int c, int channel, int token, int code) {
        int stride = c * bits / 8;
        long at = codes + (long) channel * stride + token % stride;
        int shift = token / stride * bits;
        byte b = out.get(ValueLayout.JAVA_BYTE, at);
        out.set(ValueLayout.JAVA_BYTE, at, (byte) (b | (code << shift)));
    }
}
