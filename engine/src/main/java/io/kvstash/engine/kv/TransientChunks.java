package io.kvstash.engine.kv;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Semaphore;

/**
 * Transient bodies for one sequence's parked chunks: a fixed number of chunk-sized slots in
 * off-heap memory this object owns (allocated once, never registered in any tier, so reading a
 * parked chunk never promotes it), filled through the chunks' {@link ChunkFetcher}s and reused
 * least recently used first. A step binds, layer by layer, the parked chunks that layer's attention
 * needs ({@link #bind}); a chunk stays bound until its slot is needed for another, so chunks that
 * successive layers and steps pick again are read once. With prefetch on, after binding a layer it
 * reads on a background thread the chunks the next layer needed in the previous step (selection is
 * strongly correlated from one step to the next) into slots the current layer does not use.
 *
 * <p>Driven by the one thread that runs the sequence's forward pass; the prefetch thread touches
 * only slots the current layer does not read, and {@link #bind} waits for it before changing
 * anything. Binding allocates nothing.
 */
public final class TransientChunks implements AutoCloseable {
    /** Counters since creation. */
    public record Stats(int capacity, long binds, long hits, long fetched, long prefetched, long prefetchHits, long needed, int peakNeeded) {
        /** Parked chunks a layer needed with a body, on average over the binds. */
        public double meanNeeded() {
            return binds == 0 ? 0 : (double) needed / binds;
        }
    }

    private final ChunkLayout layout;
    private final int capacity;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment[] slots;
    private final KvChunk[] holder;   // (slot) the parked chunk whose body a slot holds, or null
    private final long[] lastUse;     // (slot) bind tick that last needed the slot
    private final boolean[] prefetchedSlot; // (slot) filled by prefetch and not yet needed
    // Scratch of one fetch call.
    private final Object[] keys;
    private final MemorySegment[] into;
    private final KvChunk[] batch;
    // Per layer, which chunks the previous bind of that layer needed: (layer, chunk).
    private boolean[][] lastNeed;
    private long tick;
    private long binds;
    private long hits;
    private long fetched;
    private long prefetched;
    private long prefetchHits;
    private long neededTotal;
    private int peakNeeded;

    // Prefetch: one thread, handed one request at a time.
    private final Thread prefetcher;
    private final Semaphore requested = new Semaphore(0);
    private final Semaphore finished = new Semaphore(0);
    private final KvChunk[] prefetchBatch;
    private final Object[] prefetchKeys;
    private final MemorySegment[] prefetchInto;
    private final int[] prefetchSlot;
    private int prefetchCount;
    private boolean prefetchPending;
    private RuntimeException prefetchError;
    private volatile boolean closed;

    /**
     * @param geometry the sequence's geometry (slots take its sealed layout)
     * @param capacity slots: most parked chunks with a body at once; a layer whose attention needs
     *                 more attends in rounds (for dense attention it needs every parked chunk)
     * @param prefetch read the next layer's likely chunks on a background thread
     */
    public TransientChunks(KvGeometry geometry, int capacity, boolean prefetch) {
        if (capacity < 1) {
            throw new IllegalArgumentException("transient chunk capacity must be at least 1, got " + capacity);
        }
        this.layout = geometry.layout();
        this.capacity = capacity;
        this.slots = new MemorySegment[capacity];
        MemorySegment all = arena.allocate(layout.chunkBytes() * capacity, 64);
        for (int i = 0; i < capacity; i++) {
            slots[i] = all.asSlice(i * layout.chunkBytes(), layout.chunkBytes());
        }
        this.holder = new KvChunk[capacity];
        this.lastUse = new long[capacity];
        this.prefetchedSlot = new boolean[capacity];
        this.keys = new Object[capacity];
        this.into = new MemorySegment[capacity];
        this.batch = new KvChunk[capacity];
        this.lastNeed = new boolean[geometry.layers()][0];
        this.prefetchBatch = new KvChunk[capacity];
        this.prefetchKeys = new Object[capacity];
        this.prefetchInto = new MemorySegment[capacity];
        this.prefetchSlot = new int[capacity];
        if (prefetch) {
            prefetcher = Thread.ofPlatform().daemon().name("kvstash-chunk-prefetch").start(this::prefetchLoop);
        } else {
            prefetcher = null;
        }
    }

    ChunkLayout layout() {
        return layout;
    }

    public int capacity() {
        return capacity;
    }

    /** Off-heap bytes of the slots. */
    public long bytes() {
        return layout.chunkBytes() * capacity;
    }

    /** Bytes of the slots that hold a body now. */
    public long bytesInUse() {
        int n = 0;
        for (KvChunk c : holder) {
            if (c != null) {
                n++;
            }
        }
        return n * layout.chunkBytes();
    }

    public Stats stats() {
        return new Stats(capacity, binds, hits, fetched, prefetched, prefetchHits, neededTotal, peakNeeded);
    }

    /**
     * Makes sure every parked chunk {@code i < count} of {@code chunks} with {@code need[i]} has a body
     * for {@code layer}'s attention: those bound already stay, the others are fetched (in one call per
     * fetcher) into the least recently used slots no needed chunk holds. Then, with prefetch on,
     * starts reading the chunks the next layer needed last time ({@code prefetchNext}: a layer
     * attending in rounds starts it after its last round only).
     *
     * @throws IllegalStateException when more parked chunks are needed at once than there are slots
     *                               (the forward pass never asks for more: it attends in rounds)
     * @throws ChunkUnavailableException when a fetcher cannot read a chunk back
     */
    void bind(List<KvChunk> chunks, int count, boolean[] need, int layer, boolean prefetchNext) {
        awaitPrefetch();
        tick++;
        binds++;
        int needed = 0;
        int missing = 0;
        for (int i = 0; i < count; i++) {
            KvChunk c = chunks.get(i);
            if (!need[i] || !c.parked()) {
                continue;
            }
            needed++;
            int s = c.transientSlot;
            if (s >= 0) {
                lastUse[s] = tick;
                hits++;
                if (prefetchedSlot[s]) {
                    prefetchedSlot[s] = false;
                    prefetchHits++;
                }
            } else if (missing < capacity) {
                batch[missing++] = c;
            }
        }
        peakNeeded = Math.max(peakNeeded, needed);
        neededTotal += needed;
        if (needed > capacity) {
            Arrays.fill(batch, 0, missing, null);
            throw new IllegalStateException("layer " + layer + " needs " + needed + " parked chunks at once, but there are "
                    + capacity + " transient slots");
        }
        int start = 0;
        while (start < missing) {
            // One fetch call per run of chunks with the same fetcher.
            ChunkFetcher f = batch[start].fetcher();
            int n = 0;
            for (int j = start; j < missing && batch[j].fetcher() == f; j++, n++) {
                int s = victim();
                evict(s);
                holder[s] = batch[j];
                lastUse[s] = tick;
                batch[j].transientSlot = s;
                keys[n] = batch[j].fetchKey();
                into[n] = slots[s];
            }
            try {
                f.fetch(keys, into, 0, n);
            } catch (RuntimeException e) {
                for (int j = start; j < start + n; j++) {
                    evict(batch[j].transientSlot);
                }
                throw e;
            } finally {
                Arrays.fill(keys, 0, n, null);
            }
            for (int j = start; j < start + n; j++) {
                batch[j].attachBody(slots[batch[j].transientSlot]);
            }
            fetched += n;
            start += n;
        }
        Arrays.fill(batch, 0, missing, null);
        if (lastNeed[layer].length < count) {
            lastNeed[layer] = new boolean[Math.max(count, 2 * lastNeed[layer].length)];
        }
        System.arraycopy(need, 0, lastNeed[layer], 0, count);
        if (prefetcher != null && prefetchNext) {
            startPrefetch(chunks, count, (layer + 1) % lastNeed.length);
        }
    }

    /** The least recently used slot not needed by the current bind; empty slots first. */
    private int victim() {
        int best = -1;
        for (int s = 0; s < capacity; s++) {
            if (holder[s] == null) {
                return s;
            }
            if (lastUse[s] != tick && (best < 0 || lastUse[s] < lastUse[best])) {
                best = s;
            }
        }
        if (best < 0) {
            throw new IllegalStateException("no free transient slot"); // bind checked the count first
        }
        return best;
    }

    private void evict(int s) {
        KvChunk c = holder[s];
        if (c != null) {
            c.attachBody(null);
            c.transientSlot = -1;
            holder[s] = null;
        }
        prefetchedSlot[s] = false;
    }

    /** Drops the body of {@code chunk} if one is bound (the chunk leaves its cache). */
    void forget(KvChunk chunk) {
        awaitPrefetch();
        if (chunk.transientSlot >= 0) {
            evict(chunk.transientSlot);
        }
    }

    /** Drops every bound body, so that the next binds fetch again (benchmarks: reading per step). */
    public void clear() {
        awaitPrefetch();
        for (int s = 0; s < capacity; s++) {
            evict(s);
        }
    }

    private void startPrefetch(List<KvChunk> chunks, int count, int nextLayer) {
        boolean[] want = lastNeed[nextLayer];
        int n = 0;
        for (int i = 0; i < Math.min(count, want.length); i++) {
            KvChunk c = chunks.get(i);
            if (!want[i] || !c.parked() || c.transientSlot >= 0) {
                continue;
            }
            int s = prefetchVictim();
            if (s < 0) {
                break;
            }
            evict(s);
            // Claimed now, attached by the prefetch thread; the current layer reads none of these.
            holder[s] = c;
            lastUse[s] = tick - 1;
            c.transientSlot = s;
            prefetchedSlot[s] = true;
            prefetchBatch[n] = c;
            prefetchKeys[n] = c.fetchKey();
            prefetchInto[n] = slots[s];
            prefetchSlot[n] = s;
            n++;
        }
        if (n == 0) {
            return;
        }
        prefetchCount = n;
        prefetchPending = true;
        requested.release();
    }

    /** An empty slot, or the least recently used one the current bind does not need and not claimed by this prefetch. */
    private int prefetchVictim() {
        int best = -1;
        for (int s = 0; s < capacity; s++) {
            if (holder[s] == null) {
                return s;
            }
            if (lastUse[s] < tick - 1 && (best < 0 || lastUse[s] < lastUse[best])) {
                best = s;
            }
        }
        return best;
    }

    private void prefetchLoop() {
        while (true) {
            try {
                requested.acquire();
            } catch (InterruptedException e) {
                return;
            }
            if (closed) {
                return;
            }
            try {
                int n = prefetchCount;
                int start = 0;
                while (start < n) {
                    ChunkFetcher f = prefetchBatch[start].fetcher();
                    int end = start;
                    while (end < n && prefetchBatch[end].fetcher() == f) {
                        end++;
                    }
                    f.fetch(prefetchKeys, prefetchInto, start, end);
                    for (int j = start; j < end; j++) {
                        prefetchBatch[j].attachBody(prefetchInto[j]);
                    }
                    start = end;
                }
            } catch (RuntimeException e) {
                prefetchError = e;
            } finally {
                finished.release();
            }
        }
    }

    /** Waits for a prefetch in flight; a chunk it failed to read is unbound again (a later bind fetches it, or reports the failure). */
    private void awaitPrefetch() {
        if (!prefetchPending) {
            return;
        }
        finished.acquireUninterruptibly();
        prefetchPending = false;
        int n = prefetchCount;
        if (prefetchError != null) {
            for (int j = 0; j < n; j++) {
                if (!prefetchBatch[j].hasBody() && prefetchBatch[j].transientSlot == prefetchSlot[j]) {
                    evict(prefetchSlot[j]);
                }
            }
            prefetchError = null;
        } else {
            prefetched += n;
        }
        Arrays.fill(prefetchBatch, 0, n, null);
        Arrays.fill(prefetchKeys, 0, n, null);
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        awaitPrefetch();
        for (int s = 0; s < capacity; s++) {
            evict(s);
        }
        closed = true;
        if (prefetcher != null) {
            requested.release();
            try {
                prefetcher.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        arena.close();
    }
}
