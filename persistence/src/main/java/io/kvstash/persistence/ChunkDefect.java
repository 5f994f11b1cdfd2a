package io.kvstash.persistence;

/** Why a stored chunk value was rejected. A rejected chunk is treated as missing. */
public enum ChunkDefect {
    /** Shorter than the fixed prefix, or shorter than the payload length it declares. */
    TRUNCATED,
    /** Longer than the payload length it declares. */
    TRAILING_BYTES,
    /** Does not start with the chunk magic: not a chunk value at all. */
    BAD_MAGIC,
    /** An encoding version this build does not read. */
    UNKNOWN_VERSION,
    /** Reserved header bits are set: written by a newer encoder or damaged. */
    RESERVED_BITS_SET,
    /** The CRC32C over header and payload does not match. */
    CHECKSUM_MISMATCH,
    /** Intact, but computed with another model than the reader expects. */
    MODEL_MISMATCH,
    /** Intact, but in another KV format than the reader expects. */
    FORMAT_MISMATCH,
    /** Intact, but holding another number of tokens than the reader expects. */
    TOKEN_COUNT_MISMATCH
}
