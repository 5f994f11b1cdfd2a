package io.kvstash.engine.kv;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Turns one block of a sealed chunk back into floats ({@code values[C][D]}), as
 * {@link ChunkLayout} documents each format. Attention never does this (it reads blocks in place);
 * a context shift does, to re-rotate keys and seal them again. One decoder per thread.
 */
final class KvChunkDecoder {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final int G = KvFormat.GROUP;

    private KvChunkDecoder() {
    }

    /** Block (layer, K|V, head) of {@code chunk} into {@code out[0 .. C·D)}, token-major. */
    static void decodeBlock(KvChunk chunk, int layer, boolean value, int head, float[] out) {
        ChunkLayout layout = chunk.layout();
        KvGeometry g = layout.geometry();
        int c = g.chunkTokens();
        int d = g.headDim();
        int ng = (d + G - 1) / G;
        MemorySegment m = chunk.data();
        long at = layout.blockOffset(layer, value, head);
        KvFormat f = chunk.format();
        switch (f) {
            case F32 -> MemorySegment.copy(m, FLOAT, at, out, 0, c * d);
            case F16 -> {
                for (int e = 0; e < c * d; e++) {
                    out[e] = Float.float16ToFloat(m.get(SHORT, at + 2L * e));
                }
            }
            case Q8 -> {
                long codes = at + layout.codesOffset(value);
                for (int t = 0; t < c; t++) {
                    for (int i = 0; i < d; i++) {
                        out[t * d + i] = value
                                ? m.get(FLOAT, at + 4L * (t * ng + i / G)) * m.get(ValueLayout.JAVA_BYTE, codes + (long) t * d + i)
                                : m.get(FLOAT, at + 4L * ((long) (i / G) * c + t)) * m.get(ValueLayout.JAVA_BYTE, codes + (long) i * c + t);
                    }
                }
            }
            case KIVI4, KIVI2 -> {
                int bits = f.codeBits;
                int stride = c * bits / 8;
                int mask = (1 << bits) - 1;
                long codes = at + layout.codesOffset(value);
                long scales = at + layout.scalesOffset(value);
                for (int t = 0; t < c; t++) {
                    for (int i = 0; i < d; i++) {
                        int b = m.get(ValueLayout.JAVA_BYTE, codes + (long) i * stride + t % stride) & 0xFF;
                        int code = (b >>> (t / stride * bits)) & mask;
                        long param = value ? (long) (i / G) * c + t : (long) (t / G) * d + i;
                        float min = Float.float16ToFloat(m.get(SHORT, at + 2 * param));
                        float scale = Float.float16ToFloat(m.get(SHORT, scales + 2 * param));
                        out[t * d + i] = min + scale * code;
                    }
                }
            }
        }
    }
}
