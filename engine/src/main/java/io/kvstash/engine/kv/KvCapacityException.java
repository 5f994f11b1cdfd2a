package io.kvstash.engine.kv;

/** No room left for another chunk under the configured budget. */
public final class KvCapacityException extends RuntimeException {
    public KvCapacityException(String message) {
        super(message);
    }
}
