package io.kvstash.engine;

/** A sequence would grow past the configured context length. */
public final class ContextOverflowException extends RuntimeException {
    public ContextOverflowException(String message) {
        super(message);
    }
}
