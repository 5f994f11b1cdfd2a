package io.kvstash.engine.kv;

/** The body of a parked chunk could not be read back (gone from its tier, or damaged there). */
public final class ChunkUnavailableException extends RuntimeException {
    public ChunkUnavailableException(String message) {
        super(message);
    }

    public ChunkUnavailableException(String message, Throwable cause) {
        super(message, cause);
    }
}
