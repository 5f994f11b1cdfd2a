package io.kvstash.engine.kv;

import java.lang.foreign.MemorySegment;

/**
 * Reads back the body of a parked chunk (see {@link KvCache#park}): whoever parks a chunk supplies
 * the fetcher and the key it finds the chunk under (the offload module: a warm-tier read). The bytes
 * must be exactly those the chunk held when it was parked, in its {@link ChunkLayout}. Called from
 * the thread running the forward pass, or from a prefetch thread; implementations are thread-safe.
 */
@FunctionalInterface
public interface ChunkFetcher {
    /**
     * Fills {@code into[i]} (each one chunk of the cache's sealed layout) with the body of the chunk
     * under {@code keys[i]}, for {@code from <= i < to}; the arrays are the caller's scratch, reused.
     *
     * @throws ChunkUnavailableException when a chunk cannot be read back
     */
    void fetch(Object[] keys, MemorySegment[] into, int from, int to);
}
