package io.kvstash.engine.kv;

/**
 * The shape of one chunk: {@code chunkTokens} positions of every layer's keys and values.
 *
 * <p>Layout: {@code (layer, K|V, kvHead, token, headDim)}. One head's keys for the whole chunk are
 * contiguous, so attention for a head walks one run of memory, and per-channel quantization of a
 * head's keys (KIVI) groups naturally.
 */
public record KvGeometry(int layers, int kvHeads, int headDim, int chunkTokens, KvFormat format) {
    public static final int DEFAULT_CHUNK_TOKENS = 64;

    public KvGeometry {
        if (layers <= 0 || kvHeads <= 0 || headDim <= 0 || chunkTokens <= 0) {
            throw new IllegalArgumentException("invalid KV geometry: " + layers + " layers, " + kvHeads + " kv heads, head dim "
                    + headDim + ", " + chunkTokens + " tokens per chunk");
        }
    }

    public int kvDim() {
        return kvHeads * headDim;
    }

    /** Bytes of one head's keys (or values) for the whole chunk. */
    public long headBytes() {
        return (long) chunkTokens * headDim * format.bytesPerElement;
    }

    public long chunkBytes() {
        return 2L * layers * kvHeads * headBytes();
    }

    /** Byte offset of token 0 of {@code kvHead}'s keys (value = false) or values (value = true) in {@code layer}. */
    public long headOffset(int layer, boolean value, int kvHead) {
        return ((long) (2 * layer + (value ? 1 : 0)) * kvHeads + kvHead) * headBytes();
    }
}
