package io.kvstash.engine.kv;

/**
 * The shape of a sequence's chunks: {@code chunkTokens} positions of every layer's keys and values,
 * sealed in {@code format} ({@link ChunkLayout} says where each byte goes; open tails are F32).
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

    /** The layout of this geometry's sealed chunks. */
    public ChunkLayout layout() {
        return ChunkLayout.of(this, format);
    }

    /** Bytes of one sealed chunk. */
    public long chunkBytes() {
        return layout().chunkBytes();
    }
}
