package io.kvstash.engine.kv;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/** Test-side decoder written from {@link ChunkLayout}'s documentation, independent of the kernels. */
final class ChunkDecoder {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private ChunkDecoder() {
    }

    /** The block of (layer, K|V, head) as values[C][D]. */
    static float[][] decode(KvChunk chunk, int layer, boolean value, int head) {
        ChunkLayout layout = chunk.layout();
        KvGeometry g = layout.geometry();
        int c = g.chunkTokens();
        int d = g.headDim();
        int gs = KvFormat.GROUP;
        int ng = (d + gs - 1) / gs;
        MemorySegment m = chunk.data();
        long at = layout.blockOffset(layer, value, head);
        float[][] out = new float[c][d];
        KvFormat f = chunk.format();
        for (int t = 0; t < c; t++) {
            for (int i = 0; i < d; i++) {
                long e = (long) t * d + i;
                out[t][i] = switch (f) {
                    case F32 -> m.get(FLOAT, at + 4 * e);
                    case F16 -> Float.float16ToFloat(m.get(SHORT, at + 2 * e));
                    case Q8 -> value
                            ? m.get(FLOAT, at + 4L * (t * ng + i / gs)) * m.get(ValueLayout.JAVA_BYTE, at + layout.codesOffset(value) + e)
                            : m.get(FLOAT, at + 4L * ((long) (i / gs) * c + t))
                                    * m.get(ValueLayout.JAVA_BYTE, at + layout.codesOffset(value) + (long) i * c + t);
                    case KIVI4, KIVI2 -> {
                        int bits = f.codeBits;
                        int stride = c * bits / 8;
                        int b = m.get(ValueLayout.JAVA_BYTE, at + layout.codesOffset(value) + (long) i * stride + t % stride) & 0xFF;
                        int code = (b >>> (t / stride * bits)) & ((1 << bits) - 1);
                        long param = value ? (long) (i / gs) * c + t : (long) (t / gs) * d + i;
                        float min = Float.float16ToFloat(m.get(SHORT, at + 2 * param));
                        float scale = Float.float16ToFloat(m.get(SHORT, at + layout.scalesOffset(value) + 2 * param));
                        yield min + scale * code;
                    }
                };
            }
        }
        return out;
    }
}
