package io.kvstash.engine.kv;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;

/**
 * Chunks carved out of off-heap slabs and recycled through a free list, so that a long-running
 * server neither allocates nor frees native memory per chunk. Slabs grow geometrically (each as
 * large as everything before it, up to 64 MiB), so a short run touches little memory and a busy
 * server few slabs. The store owns the arena: closing it frees every chunk at once.
 */
public final class SlabKvStore implements KvStore {
    private static final long SLAB_TARGET_BYTES = 64L << 20;

    private final KvGeometry geometry;
    private final long capacityBytes;
    private final int maxChunksPerSlab;
    private final Arena arena = Arena.ofShared();
    private final ArrayDeque<KvChunk> free = new ArrayDeque<>();
    private long allocatedBytes;
    private long inUseBytes;
    private boolean closed;

    /** @param capacityBytes most bytes of chunks this store may hold; {@code Long.MAX_VALUE} for no limit */
    public SlabKvStore(KvGeometry geometry, long capacityBytes) {
        this.geometry = geometry;
        this.capacityBytes = capacityBytes;
        this.maxChunksPerSlab = (int) Math.max(1, Math.min(1024, SLAB_TARGET_BYTES / geometry.chunkBytes()));
    }

    @Override
    public KvGeometry geometry() {
        return geometry;
    }

    @Override
    public synchronized KvChunk allocate() {
        if (closed) {
            throw new IllegalStateException("KV store is closed");
        }
        if (free.isEmpty()) {
            long chunkBytes = geometry.chunkBytes();
            if (inUseBytes + chunkBytes > capacityBytes) {
                throw new KvCapacityException("KV store is full: " + inUseBytes + " of " + capacityBytes + " bytes in use");
            }
            long room = (capacityBytes - allocatedBytes) / chunkBytes;
            long grown = Math.max(1, allocatedBytes / chunkBytes);
            int n = (int) Math.max(1, Math.min(Math.min(maxChunksPerSlab, grown), room));
            MemorySegment slab = arena.allocate(chunkBytes * n, 64);
            for (int i = 0; i < n; i++) {
                free.add(new KvChunk(geometry, slab.asSlice(i * chunkBytes, chunkBytes)));
            }
            allocatedBytes += chunkBytes * n;
        }
        inUseBytes += geometry.chunkBytes();
        return free.pop();
    }

    @Override
    public synchronized void release(KvChunk chunk) {
        if (closed) {
            return;
        }
        if (chunk.geometry() != geometry && !chunk.geometry().equals(geometry)) {
            throw new IllegalArgumentException("chunk of another geometry released to this store");
        }
        inUseBytes -= geometry.chunkBytes();
        free.push(chunk);
    }

    @Override
    public synchronized long bytesInUse() {
        return inUseBytes;
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            free.clear();
            arena.close();
        }
    }
}
