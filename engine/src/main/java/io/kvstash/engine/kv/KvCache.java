package io.kvstash.engine.kv;

import java.util.ArrayList;
import java.util.List;

/**
 * One sequence's KV cache: its chunks in position order and how many positions are filled.
 * Position {@code p} lives in chunk {@code p / C} at slot {@code p % C}. Not thread-safe: one
 * sequence is advanced by one forward pass at a time.
 */
public final class KvCache implements AutoCloseable {
    private final KvStore store;
    private final int chunkTokens;
    private final List<KvChunk> chunks = new ArrayList<>();
    private int length;

    public KvCache(KvStore store) {
        this.store = store;
        this.chunkTokens = store.geometry().chunkTokens();
    }

    public KvGeometry geometry() {
        return store.geometry();
    }

    /** Positions filled. */
    public int length() {
        return length;
    }

    public int chunkCount() {
        return chunks.size();
    }

    public KvChunk chunk(int index) {
        return chunks.get(index);
    }

    /** Makes sure chunks exist for positions {@code [0, positions)}. */
    public void reserve(int positions) {
        while ((long) chunks.size() * chunkTokens < positions) {
            chunks.add(store.allocate());
        }
    }

    /** Marks positions {@code [0, length)} as filled; called by the forward pass after writing them. */
    public void setLength(int length) {
        if (length < 0 || length > (long) chunks.size() * chunkTokens) {
            throw new IllegalArgumentException("length " + length + " outside the reserved " + chunks.size() * chunkTokens + " positions");
        }
        this.length = length;
    }

    /** Forgets positions from {@code length} on, returning whole chunks no longer needed. */
    public void truncate(int length) {
        if (length < 0 || length > this.length) {
            throw new IllegalArgumentException("cannot truncate a cache of " + this.length + " positions to " + length);
        }
        int keep = (length + chunkTokens - 1) / chunkTokens;
        while (chunks.size() > keep) {
            store.release(chunks.removeLast());
        }
        this.length = length;
    }

    @Override
    public void close() {
        for (KvChunk c : chunks) {
            store.release(c);
        }
        chunks.clear();
        length = 0;
    }
}
