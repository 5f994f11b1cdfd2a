package io.kvstash.engine.kv;

/**
 * Where a sequence's chunks come from and go back to. The engine's own implementation keeps them
 * in off-heap slabs ({@link SlabKvStore}); the offload module supplies one with hot and warm tiers.
 * Implementations are thread-safe.
 */
public interface KvStore extends AutoCloseable {
    KvGeometry geometry();

    /** A zero-length chunk to write into. */
    KvChunk allocate();

    /** Returns a chunk this store handed out; the caller must not touch it afterwards. */
    void release(KvChunk chunk);

    /** Bytes currently handed out. */
    long bytesInUse();

    @Override
    void close();
}
