package io.kvstash.offload;

import io.kvstash.engine.kv.KvCapacityException;
import io.kvstash.engine.kv.KvChunk;
import io.kvstash.engine.kv.KvGeometry;
import io.kvstash.engine.kv.KvStore;
import io.kvstash.engine.kv.SlabKvStore;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The hot tier: chunks in off-heap slabs under a byte budget. It is the engine's {@link KvStore}
 * (sequences allocate tails and seal chunks through it), and it keeps full chunks registered
 * under their {@link ChunkKey} after the sequences that used them are done, as a cache: an
 * unpinned registered chunk sits in an LRU list until its memory is needed or it is offloaded.
 *
 * <p>A chunk is pinned while any sequence's cache holds it ({@link #acquire} and
 * {@link #register} pin, {@link #release} unpins); pinned chunks are never evicted, so a kernel
 * never reads freed memory. Evicting a chunk that is not yet in the warm tier writes it there
 * first ({@link WriteBack}), unless the tier runs without one.
 *
 * <p>Thread-safe: one lock over the maps; encoding a sealed chunk runs outside it.
 */
public final class HotTier implements KvStore {
    /** Persists a chunk about to be evicted that the warm tier does not have yet. */
    @FunctionalInterface
    public interface WriteBack {
        void write(ChunkKey key, KvChunk chunk);
    }

    /** Counters since start. */
    public record Stats(long capacityBytes, long bytesInUse, int registeredChunks, int pinnedChunks, long hits, long misses,
                        long evictions, long writeBacks) {}

    private static final class Entry {
        final ChunkKey key;
        final KvChunk chunk;
        int pins;
        boolean persisted;

        Entry(ChunkKey key, KvChunk chunk, boolean persisted) {
            this.key = key;
            this.chunk = chunk;
            this.persisted = persisted;
        }
    }

    private final SlabKvStore slabs;
    private final long capacityBytes;
    private final Map<ChunkKey, Entry> byKey = new HashMap<>();
    private final Map<KvChunk, Entry> byChunk = new IdentityHashMap<>();
    /** Unpinned registered chunks, least recently released first. */
    private final LinkedHashMap<ChunkKey, Entry> lru = new LinkedHashMap<>();
    private volatile WriteBack writeBack;
    private long hits;
    private long misses;
    private long evictions;
    private long writeBacks;

    public HotTier(KvGeometry geometry, long capacityBytes) {
        this.slabs = new SlabKvStore(geometry, capacityBytes);
        this.capacityBytes = capacityBytes;
    }

    /** Where evicted chunks go when the warm tier does not have them yet; null to drop them. */
    public void writeBackTo(WriteBack writeBack) {
        this.writeBack = writeBack;
    }

    @Override
    public KvGeometry geometry() {
        return slabs.geometry();
    }

    @Override
    public KvChunk allocate() {
        while (true) {
            try {
                return slabs.allocate();
            } catch (KvCapacityException e) {
                makeRoom(e);
            }
        }
    }

    @Override
    public KvChunk allocateSealed() {
        while (true) {
            try {
                return slabs.allocateSealed();
            } catch (KvCapacityException e) {
                makeRoom(e);
            }
        }
    }

    @Override
    public KvChunk seal(KvChunk tail) {
        while (true) {
            try {
                return slabs.seal(tail);
            } catch (KvCapacityException e) {
                makeRoom(e);
            }
        }
    }

    private synchronized void makeRoom(KvCapacityException full) {
        if (!evictOne()) {
            throw new KvCapacityException(full.getMessage() + "; every chunk in the hot tier is in use by a running sequence");
        }
    }

    @Override
    public synchronized void release(KvChunk chunk) {
        Entry e = byChunk.get(chunk);
        if (e == null) {
            slabs.release(chunk);
        } else if (--e.pins == 0) {
            lru.put(e.key, e);
        }
    }

    /** The registered chunk for {@code key}, pinned, or null when the hot tier does not have it (a miss). */
    public KvChunk acquire(ChunkKey key) {
        return acquire(key, true);
    }

    /**
     * As {@link #acquire(ChunkKey)}; with {@code countMiss} false, not finding the chunk is not
     * counted as a miss: for a second look at a key whose miss was counted already (a reader that
     * checks again before registering what it read from a lower tier). A hit is always counted.
     */
    public synchronized KvChunk acquire(ChunkKey key, boolean countMiss) {
        Entry e = byKey.get(key);
        if (e == null) {
            if (countMiss) {
                misses++;
            }
            return null;
        }
        hits++;
        if (e.pins++ == 0) {
            lru.remove(key);
        }
        return e.chunk;
    }

    /**
     * Registers a full chunk (pinned by the caller's cache) under {@code key}. Returns the chunk to
     * keep: {@code chunk} itself, or the one already registered under the key (pinned for the
     * caller, who swaps it in and releases its own copy).
     */
    public synchronized KvChunk register(ChunkKey key, KvChunk chunk, boolean persisted) {
        Entry e = byKey.get(key);
        if (e != null) {
            if (e.chunk == chunk) {
                return chunk;
            }
            if (e.pins++ == 0) {
                lru.remove(key);
            }
            e.persisted |= persisted;
            return e.chunk;
        }
        if (byChunk.containsKey(chunk)) {
            throw new IllegalArgumentException("chunk already registered under " + byChunk.get(chunk).key);
        }
        e = new Entry(key, chunk, persisted);
        e.pins = 1;
        byKey.put(key, e);
        byChunk.put(chunk, e);
        return chunk;
    }

    /** Records that the warm tier now has {@code key}, so evicting it needs no write. */
    public synchronized void markPersisted(ChunkKey key) {
        Entry e = byKey.get(key);
        if (e != null) {
            e.persisted = true;
        }
    }

    public synchronized boolean isPersisted(ChunkKey key) {
        Entry e = byKey.get(key);
        return e != null && e.persisted;
    }

    public synchronized boolean contains(ChunkKey key) {
        return byKey.containsKey(key);
    }

    /**
     * Drops {@code key} from the hot tier if no sequence holds it (writing it back first if the
     * warm tier lacks it); returns whether it is gone.
     */
    public synchronized boolean evict(ChunkKey key) {
        Entry e = byKey.get(key);
        if (e == null) {
            return true;
        }
        if (e.pins > 0) {
            return false;
        }
        drop(e);
        return true;
    }

    /** Evicts every unpinned chunk (tests and benchmarks: a cold hot tier). */
    public synchronized int evictAll() {
        int n = 0;
        while (evictOne()) {
            n++;
        }
        return n;
    }

    private boolean evictOne() {
        Iterator<Entry> it = lru.values().iterator();
        if (!it.hasNext()) {
            return false;
        }
        drop(it.next());
        return true;
    }

    private void drop(Entry e) {
        WriteBack wb = writeBack;
        if (!e.persisted && wb != null) {
            wb.write(e.key, e.chunk);
            e.persisted = true;
            writeBacks++;
        }
        lru.remove(e.key);
        byKey.remove(e.key);
        byChunk.remove(e.chunk);
        slabs.release(e.chunk);
        evictions++;
    }

    /** Registered keys, for reports. */
    public synchronized List<ChunkKey> keys() {
        return new ArrayList<>(byKey.keySet());
    }

    public synchronized Stats stats() {
        int pinned = 0;
        for (Entry e : byKey.values()) {
            if (e.pins > 0) {
                pinned++;
            }
        }
        return new Stats(capacityBytes, slabs.bytesInUse(), byKey.size(), pinned, hits, misses, evictions, writeBacks);
    }

    @Override
    public long bytesInUse() {
        return slabs.bytesInUse();
    }

    @Override
    public synchronized void close() {
        byKey.clear();
        byChunk.clear();
        lru.clear();
        slabs.close();
    }
}
