package io.kvstash.persistence;

import java.util.Objects;

/**
 * A chunk to store: its key, its header and its payload. The store encodes it with
 * {@link ChunkCodec}; the arrays are read during the write and not kept.
 */
public record NewChunk(byte[] key, ChunkHeader header, byte[] payload) {
    public NewChunk {
        Keys.require(key, "chunk key");
        Objects.requireNonNull(header, "chunk header");
        Objects.requireNonNull(payload, "chunk payload");
    }
}
