package io.kvstash.persistence;

import java.util.Objects;

/**
 * What a stored chunk says about itself, and what a reader expects of it: the caller's KV format
 * code, how many tokens the chunk holds and the model it was computed with. On read, a stored
 * chunk whose header differs from the expected one is rejected, never returned as data.
 *
 * @param kvFormat         the caller's code for the KV format (the store does not interpret it)
 * @param tokenCount       tokens in the chunk, at least 1
 * @param modelFingerprint the model the chunk was computed with
 */
public record ChunkHeader(byte kvFormat, int tokenCount, ModelFingerprint modelFingerprint) {
    public ChunkHeader {
        if (tokenCount < 1) {
            throw new IllegalArgumentException("chunk token count must be at least 1, got " + tokenCount);
        }
        Objects.requireNonNull(modelFingerprint, "model fingerprint");
    }
}
