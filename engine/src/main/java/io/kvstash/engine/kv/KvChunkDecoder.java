package io.kvstash.engine.kv;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Turns blocks of a sealed chunk back into floats ({@code values[C][D]}), as {@link ChunkLayout}
 * documents each format: each block's parameters and codes are copied out in bulk, then decoded.
 * Attention never does this (it reads blocks in place); a context shift does, to re-rotate keys
 * and seal them again. One decoder serves one thread, for chunks of one geometry.
 */
final class KvChunkDecoder {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final int G = KvFormat.GROUP;

    private final int c;
    private final int d;
    private final int ng;
    private final float[] scales;  // Q8 scales
    private final short[] mins;    // KIVI mins, F16 values
    private final short[] steps;   // KIVI scales
    private final byte[] codes;

    KvChunkDecoder(KvGeometry g) {
        this.c = g.chunkTokens();
        this.d = g.headDim();
        this.ng = (d + G - 1) / G;
        this.scales = new float[c * ng];
        int params = Math.max(Math.max(c / G * d, c * ng), c * d);
        this.mins = new short[params];
        this.steps = new short[params];
        this.codes = new byte[c * d];
    }

    /** Block (layer, K|V, head) of {@code chunk} into {@code out[0 .. C·D)}, token-major. */
    void decodeBlock(KvChunk chunk, int layer, boolean value, int head, float[] out) {
        ChunkLayout layout = chunk.layout();
        MemorySegment m = chunk.data();
        long at = layout.blockOffset(layer, value, head);
        KvFormat f = chunk.format();
        switch (f) {
            case F32 -> MemorySegment.copy(m, FLOAT, at, out, 0, c * d);
            case F16 -> {
                MemorySegment.copy(m, SHORT, at, mins, 0, c * d);
                for (int e = 0; e < c * d; e++) {
                    out[e] = Float.float16ToFloat(mins[e]);
                }
            }
            case Q8 -> {
                MemorySegment.copy(m, FLOAT, at, scales, 0, c * ng);
                MemorySegment.copy(m, ValueLayout.JAVA_BYTE, at + layout.codesOffset(value), codes, 0, c * d);
                for (int t = 0; t < c; t++) {
                    for (int i = 0; i < d; i++) {
                        // Values token-major (scale[C][NG], code[C][D]); keys channel-major (scale[NG][C], code[D][C]).
                        out[t * d + i] = value ? scales[t * ng + i / G] * codes[t * d + i] : scales[(i / G) * c + t] * codes[i * c + t];
                    }
                }
            }
            case KIVI4, KIVI2 -> {
                int bits = f.codeBits;
                int stride = c * bits / 8;
                int mask = (1 << bits) - 1;
                int params = value ? ng * c : c / G * d;
                MemorySegment.copy(m, SHORT, at, mins, 0, params);
                MemorySegment.copy(m, SHORT, at + layout.scalesOffset(value), steps, 0, params);
                MemorySegment.copy(m, ValueLayout.JAVA_BYTE, at + layout.codesOffset(value), codes, 0, d * stride);
                for (int i = 0; i < d; i++) {
                    for (int t = 0; t < c; t++) {
                        int code = ((codes[i * stride + t % stride] & 0xFF) >>> (t / stride * bits)) & mask;
                        int p = value ? (i / G) * c + t : (t / G) * d + i;
                        out[t * d + i] = Float.float16ToFloat(mins[p]) + Float.float16ToFloat(steps[p]) * code;
                    }
                }
            }
        }
    }
}
