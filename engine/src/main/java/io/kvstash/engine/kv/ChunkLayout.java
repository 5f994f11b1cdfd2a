package io.kvstash.engine.kv;

/**
 * Where each byte of a chunk lives, for one {@link KvFormat}. A chunk is a sequence of blocks, one
 * per (layer, K|V, kv head), in that order: all key blocks of a layer, then its value blocks.
 * Within a block, with C tokens, D = head dimension, G = {@link KvFormat#GROUP},
 * NG = ⌈D/G⌉ channel groups (the last may be shorter, so D need not be a multiple of G):
 * <ul>
 * <li>F32 / F16: {@code values[C][D]}.
 * <li>Q8 values: {@code scale[C][NG]} (f32), then {@code code[C][D]} (int8); x = scale · code.
 *     Token-major, so the weighted sum adds one token's channels as vectors.
 * <li>Q8 keys: the same numbers transposed: {@code scale[NG][C]}, then {@code code[D][C]}.
 *     Channel-major, so one load gives consecutive tokens' codes of a channel and the scores
 *     need no horizontal reductions (as KIVI keys).
 * <li>KIVI keys: {@code min[C/G][D]}, {@code scale[C/G][D]} (f16, per channel per token group),
 *     then {@code codes[D][C·b/8]}.
 * <li>KIVI values: {@code min[NG][C]}, {@code scale[NG][C]} (f16, per channel group per token; group-major
 *     so that attention scales a whole group's token weights with vector operations), then
 *     {@code codes[D][C·b/8]}.
 * </ul>
 * KIVI codes are channel-major with the tokens of one channel packed so that one load unpacks to
 * lanes over tokens: with P = 8/b codes per byte and S = C/P bytes per channel, byte j of a
 * channel holds tokens {@code j + k·S} in bits {@code [k·b, k·b+b)}, k = 0..P−1. A vector of
 * consecutive bytes thus yields, per k, a vector of consecutive tokens: attention then needs no
 * transposes and (for keys) no horizontal reductions. This needs S to be a multiple of the widest
 * float vector (16 lanes): C a multiple of 64 for KIVI2, 32 for KIVI4.
 */
public final class ChunkLayout {
    private final KvGeometry geometry;
    private final KvFormat format;
    private final long keyBlockBytes;
    private final long valueBlockBytes;
    private final long keyCodesOffset;
    private final long valueCodesOffset;
    private final long keyScalesOffset;
    private final long valueScalesOffset;

    private ChunkLayout(KvGeometry g, KvFormat format) {
        this.geometry = g;
        this.format = format;
        int c = g.chunkTokens();
        int d = g.headDim();
        int ng = channelGroups(g);
        switch (format) {
            case F32, F16 -> {
                long bytes = (long) c * d * (format == KvFormat.F32 ? 4 : 2);
                keyBlockBytes = bytes;
                valueBlockBytes = bytes;
                keyCodesOffset = 0;
                valueCodesOffset = 0;
                keyScalesOffset = 0;
                valueScalesOffset = 0;
            }
            case Q8 -> {
                long scales = 4L * c * ng;
                long bytes = align8(scales + (long) c * d);
                keyBlockBytes = bytes;
                valueBlockBytes = bytes;
                keyScalesOffset = 0;
                valueScalesOffset = 0;
                keyCodesOffset = scales;
                valueCodesOffset = scales;
            }
            case KIVI4, KIVI2 -> {
                if (c % KvFormat.GROUP != 0 || (c * format.codeBits / 8) % 16 != 0) {
                    throw new IllegalArgumentException(format + " needs chunks of a multiple of " + (16 * 8 / format.codeBits)
                            + " tokens, got " + c);
                }
                long codes = (long) d * c * format.codeBits / 8;
                long keyParams = 2L * (c / KvFormat.GROUP) * d; // f16 entries per array
                long valueParams = 2L * c * ng;
                keyScalesOffset = keyParams;
                keyCodesOffset = 2 * keyParams;
                keyBlockBytes = align8(2 * keyParams + codes);
                valueScalesOffset = valueParams;
                valueCodesOffset = 2 * valueParams;
                valueBlockBytes = align8(2 * valueParams + codes);
            }
            default -> throw new IllegalStateException(format.toString());
        }
    }

    public static ChunkLayout of(KvGeometry geometry, KvFormat format) {
        return new ChunkLayout(geometry, format);
    }

    /** Channel groups per head: ⌈D/G⌉. */
    public static int channelGroups(KvGeometry g) {
        return (g.headDim() + KvFormat.GROUP - 1) / KvFormat.GROUP;
    }

    private static long align8(long x) {
        return (x + 7) & ~7L;
    }

    public KvGeometry geometry() {
        return geometry;
    }

    public KvFormat format() {
        return format;
    }

    public long chunkBytes() {
        return (long) geometry.layers() * geometry.kvHeads() * (keyBlockBytes + valueBlockBytes);
    }

    public long blockBytes(boolean value) {
        return value ? valueBlockBytes : keyBlockBytes;
    }

    /** Offset of the block of {@code kvHead}'s keys (value = false) or values (value = true) in {@code layer}. */
    public long blockOffset(int layer, boolean value, int kvHead) {
        long layerStart = (long) layer * geometry.kvHeads() * (keyBlockBytes + valueBlockBytes);
        return value
                ? layerStart + geometry.kvHeads() * keyBlockBytes + kvHead * valueBlockBytes
                : layerStart + kvHead * keyBlockBytes;
    }

    /** Offset of the scale (Q8) or min (KIVI) array within a block: 0. Scales of KIVI follow the mins. */
    public long scalesOffset(boolean value) {
        return value ? valueScalesOffset : keyScalesOffset;
    }

    public long codesOffset(boolean value) {
        return value ? valueCodesOffset : keyCodesOffset;
    }

    /** Bytes of KV per token of a full chunk, everything included. */
    public double bytesPerToken() {
        return (double) chunkBytes() / geometry.chunkTokens();
    }
}
