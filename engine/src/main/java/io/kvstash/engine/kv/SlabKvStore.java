package io.kvstash.engine.kv;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;

/**
 * Chunks carved out of off-heap slabs and recycled through free lists (one for F32 tails, one for
 * sealed chunks when the format differs), so that a long-running server neither allocates nor
 * frees native memory per chunk. Slabs grow geometrically (each as large as everything the pool
 * had before, up to 64 MiB), so a short run touches little memory and a busy server few slabs.
 * The store owns the arena: closing it frees every chunk at once.
 */
public final class SlabKvStore implements KvStore {
    private static final long SLAB_TARGET_BYTES = 64L << 20;

    private final KvGeometry geometry;
    private final long capacityBytes;
    private final Arena arena = Arena.ofShared();
    private final Pool tails;
    private final Pool sealed;
    private final ThreadLocal<ChunkEncoder> encoders;
    private long inUseBytes;
    private long totalAllocatedBytes;
    private boolean closed;

    /** @param capacityBytes most bytes of chunks this store may hold; {@code Long.MAX_VALUE} for no limit */
    public SlabKvStore(KvGeometry geometry, long capacityBytes) {
        this.geometry = geometry;
        this.capacityBytes = capacityBytes;
        this.tails = new Pool(ChunkLayout.of(geometry, KvFormat.F32));
        this.sealed = geometry.format() == KvFormat.F32 ? tails : new Pool(geometry.layout());
        this.encoders = ThreadLocal.withInitial(() -> new ChunkEncoder(tails.layout, sealed.layout));
    }

    /** Free list and slabs for chunks of one layout. */
    private final class Pool {
        final ChunkLayout layout;
        final long chunkBytes;
        final int maxChunksPerSlab;
        final ArrayDeque<KvChunk> free = new ArrayDeque<>();
        long allocatedBytes;

        Pool(ChunkLayout layout) {
            this.layout = layout;
            this.chunkBytes = layout.chunkBytes();
            this.maxChunksPerSlab = (int) Math.max(1, Math.min(1024, SLAB_TARGET_BYTES / chunkBytes));
        }

        KvChunk take() {
            if (free.isEmpty()) {
                long grown = Math.max(1, allocatedBytes / chunkBytes);
                long room = Math.max(1, (capacityBytes - totalAllocatedBytes) / chunkBytes);
                int n = (int) Math.min(Math.min(maxChunksPerSlab, grown), room);
                MemorySegment slab = arena.allocate(chunkBytes * n, 64);
                for (int i = 0; i < n; i++) {
                    free.add(new KvChunk(layout, slab.asSlice(i * chunkBytes, chunkBytes)));
                }
                allocatedBytes += chunkBytes * n;
                totalAllocatedBytes += chunkBytes * n;
            }
            inUseBytes += chunkBytes;
            KvChunk chunk = free.pop();
            chunk.forgetSummary();
            return chunk;
        }

        void give(KvChunk chunk) {
            inUseBytes -= chunkBytes;
            free.push(chunk);
        }
    }

    @Override
    public KvGeometry geometry() {
        return geometry;
    }

    @Override
    public synchronized KvChunk allocate() {
        return take(tails);
    }

    @Override
    public synchronized KvChunk allocateSealed() {
        return take(sealed);
    }

    @Override
    public KvChunk seal(KvChunk tail) {
        requireOwn(tail);
        if (tail.format() != KvFormat.F32) {
            throw new IllegalArgumentException("chunk is already sealed as " + tail.format());
        }
        if (sealed == tails) {
            return tail;
        }
        KvChunk out;
        synchronized (this) {
            out = take(sealed);
        }
        // Encoding runs outside the store's lock: it touches only these two chunks and this
        // thread's encoder.
        encoders.get().encode(tail, out);
        release(tail);
        return out;
    }

    private KvChunk take(Pool pool) {
        if (closed) {
            throw new IllegalStateException("KV store is closed");
        }
        if (pool.free.isEmpty() && inUseBytes + pool.chunkBytes > capacityBytes) {
            throw new KvCapacityException("KV store is full: " + inUseBytes + " of " + capacityBytes + " bytes in use");
        }
        return pool.take();
    }

    @Override
    public synchronized void release(KvChunk chunk) {
        if (closed) {
            return;
        }
        requireOwn(chunk);
        (chunk.format() == KvFormat.F32 ? tails : sealed).give(chunk);
    }

    private void requireOwn(KvChunk chunk) {
        if (!chunk.geometry().equals(geometry)) {
            throw new IllegalArgumentException("chunk of another geometry given to this store");
        }
    }

    @Override
    public synchronized long bytesInUse() {
        return inUseBytes;
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            tails.free.clear();
            sealed.free.clear();
            arena.close();
        }
    }
}
