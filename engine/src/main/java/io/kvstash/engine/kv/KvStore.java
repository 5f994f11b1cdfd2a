package io.kvstash.engine.kv;

/**
 * Where a sequence's chunks come from and go back to. The engine's own implementation keeps them
 * in off-heap slabs ({@link SlabKvStore}); the offload module supplies one with hot and warm tiers.
 * Implementations are thread-safe.
 */
public interface KvStore extends AutoCloseable {
    /** The shape of every chunk, and the format full chunks are sealed in. */
    KvGeometry geometry();

    /** An empty F32 tail chunk to write positions into. */
    KvChunk allocate();

    /**
     * An empty chunk in {@link KvGeometry#format()}, for bytes a caller fills in whole (a chunk read
     * back from storage); it counts as sealed once filled.
     */
    KvChunk allocateSealed();

    /**
     * Encodes a full tail into {@link KvGeometry#format()} and returns the sealed chunk; the tail
     * is released (for F32 the tail itself is returned, already sealed).
     */
    KvChunk seal(KvChunk tail);

    /** Returns a chunk this store handed out; the caller must not touch it afterwards. */
    void release(KvChunk chunk);

    /** Bytes currently handed out. */
    long bytesInUse();

    @Override
    void close();
}
