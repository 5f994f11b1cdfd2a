package io.kvstash.engine.kv;

import io.kvstash.engine.kernel.ComputePool;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * One sequence's KV cache: its chunks in position order and how many positions are filled.
 * Position {@code p} lives in chunk {@code p / C} at slot {@code p % C}. Every chunk but the last
 * is sealed in the store's format; the last, while not full, is the F32 tail (the residual
 * window). Not thread-safe: one sequence is advanced by one forward pass at a time.
 */
public final class KvCache implements AutoCloseable {
    private final KvStore store;
    private final int chunkTokens;
    private final List<KvChunk> chunks = new ArrayList<>();
    private int length;
    private int parked;
    private TransientChunks transientChunks; // bodies of parked chunks while steps need them; null until set

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

    /** Makes sure chunks exist for positions {@code [0, positions)}; new ones are F32 tails. */
    public void reserve(int positions) {
        while ((long) chunks.size() * chunkTokens < positions) {
            chunks.add(store.allocate());
        }
    }

    /** Whether {@link #setLength}{@code (length)} would seal a chunk (a tail that fills, in a store that quantizes). */
    public boolean sealsAt(int length) {
        return store.geometry().format() != KvFormat.F32 && length > this.length && length / chunkTokens > this.length / chunkTokens;
    }

    /**
     * Marks positions {@code [0, length)} as filled; called by the forward pass after writing them.
     * Chunks that are now full are sealed into the store's format. Key summaries are computed lazily,
     * when sparse decode first needs them ({@link KvChunk#summarise}).
     */
    public void setLength(int length) {
        if (length < 0 || length > (long) chunks.size() * chunkTokens) {
            throw new IllegalArgumentException("length " + length + " outside the reserved " + chunks.size() * chunkTokens + " positions");
        }
        int before = Math.min(this.length, length);
        this.length = length;
        for (int i = before / chunkTokens; i < length / chunkTokens; i++) {
            KvChunk c = chunks.get(i);
            if (c.format() != store.geometry().format()) {
                c = store.seal(c);
                chunks.set(i, c);
            }
        }
    }

    /**
     * Forgets positions from {@code length} on, returning whole chunks no longer needed, and returns
     * the length kept. A sealed F32 chunk reopens as the tail exactly; a chunk sealed in another
     * format cannot be reopened without loss, so the cache then keeps only the whole chunks before
     * it and the caller recomputes the rest.
     */
    public int truncate(int length) {
        if (length < 0 || length > this.length) {
            throw new IllegalArgumentException("cannot truncate a cache of " + this.length + " positions to " + length);
        }
        int keep = (length + chunkTokens - 1) / chunkTokens;
        while (chunks.size() > keep) {
            drop(chunks.removeLast());
        }
        if (length % chunkTokens != 0 && chunks.getLast().format() != KvFormat.F32) {
            drop(chunks.removeLast());
            length = chunks.size() * chunkTokens;
        }
        this.length = length;
        return length;
    }

    /**
     * Appends a full chunk computed elsewhere (restored from a tier, or shared with another
     * sequence with the same prefix): the cache must end on a chunk boundary with no tail
     * reserved. The chunk is this cache's to release from now on.
     */
    public void appendFull(KvChunk chunk) {
        requireBoundary();
        if (chunk.format() != store.geometry().format() || !chunk.geometry().equals(store.geometry())) {
            throw new IllegalArgumentException("chunk in " + chunk.format() + " does not fit a cache of " + store.geometry());
        }
        chunks.add(chunk);
        length += chunkTokens;
    }

    /**
     * Appends a full chunk that stays parked, from {@code chunk}, a chunk some cache parked (possibly
     * one closed since): this cache gets its own handle on the same summary and body source, so no
     * body is read and nothing is summarised. The cache must end on a chunk boundary past the sink, and
     * have transient chunks ({@link #useTransientChunks}).
     */
    public void appendParked(KvChunk chunk) {
        requireBoundary();
        if (!chunk.parked()) {
            throw new IllegalArgumentException("appendParked takes a parked chunk");
        }
        if (!chunk.geometry().equals(store.geometry())) {
            throw new IllegalArgumentException("chunk of " + chunk.geometry() + " does not fit a cache of " + store.geometry());
        }
        if (chunks.isEmpty()) {
            throw new IllegalArgumentException("chunk 0 (the attention sink) stays resident; append it first");
        }
        if (transientChunks == null) {
            throw new IllegalStateException("a cache parks chunks only with transient chunks to read them into (useTransientChunks)");
        }
        chunks.add(chunk.parkedHandle());
        parked++;
        length += chunkTokens;
    }

    /**
     * Appends an F32 tail holding {@code filled} positions (0 < filled < chunk tokens), e.g. one
     * restored from a session record; the cache must end on a chunk boundary.
     */
    public void appendTail(KvChunk tail, int filled) {
        requireBoundary();
        if (tail.format() != KvFormat.F32 || filled <= 0 || filled >= chunkTokens) {
            throw new IllegalArgumentException("a tail is an F32 chunk with 1.." + (chunkTokens - 1) + " positions, got "
                    + tail.format() + " with " + filled);
        }
        chunks.add(tail);
        length += filled;
    }

    /**
     * Swaps full chunk {@code index} for an identical one (the same positions computed by another
     * sequence, kept once), releasing the old one.
     */
    public void replaceFull(int index, KvChunk chunk) {
        if (index < 0 || (long) (index + 1) * chunkTokens > length || chunk.format() != chunks.get(index).format()
                || chunks.get(index).parked() || chunk.parked()) {
            throw new IllegalArgumentException("chunk " + index + " is not a resident full chunk of the same format");
        }
        KvChunk old = chunks.set(index, chunk);
        if (old != chunk) {
            store.release(old);
        }
    }

    /**
     * Context shift (llama.cpp's): keeps the first {@code keepChunks} chunks (the attention sinks),
     * drops the {@code dropChunks} after them and moves every later position back by
     * {@code dropChunks · C}, rotating its keys with {@code rotation}; values are unchanged. Chunks
     * are never changed in place (a full chunk may be shared): each moved full chunk is decoded to
     * F32, rotated and sealed again in its format (lossy for quantized formats: one more rounding),
     * the F32 tail is moved into a fresh tail. Returns the new length.
     *
     * @throws IllegalArgumentException when the cache does not hold the kept and dropped chunks
     */
    public int shift(int keepChunks, int dropChunks, KeyRotation rotation) {
        return shift(keepChunks, dropChunks, rotation, null);
    }

    /**
     * As {@link #shift(int, int, KeyRotation)}, moving the chunks in parallel on {@code pool}
     * (null: on this thread): each moved chunk is decoded, rotated and sealed on its own. The
     * rotation must allow concurrent calls with the same delta ({@code RopeRotation} does once it
     * holds that delta; this method sets it first). If a chunk fails, the chunks moved so far are
     * released and the cache is unchanged.
     */
    public int shift(int keepChunks, int dropChunks, KeyRotation rotation, ComputePool pool) {
        if (parked > 0) {
            throw new IllegalStateException("cannot shift a cache with " + parked + " parked chunks");
        }
        if (keepChunks < 0 || dropChunks < 1 || (long) (keepChunks + dropChunks) * chunkTokens > length) {
            throw new IllegalArgumentException("cannot keep " + keepChunks + " and drop " + dropChunks + " chunks of " + chunkTokens
                    + " positions from a cache of " + length + " positions");
        }
        KvGeometry g = store.geometry();
        int c = chunkTokens;
        int delta = -dropChunks * c;
        int first = keepChunks + dropChunks;
        int used = (length + c - 1) / c;
        KvChunk[] moved = new KvChunk[Math.max(0, used - first)];
        RuntimeException[] failure = new RuntimeException[1];
        rotation.rotate(new float[0], 0, delta); // takes the delta before the threads share the rotation
        ComputePool.RangeTask move = (from, to, worker) -> {
            float[] block = new float[c * g.headDim()]; // (C, D) one block being moved
            KvChunkDecoder decoder = new KvChunkDecoder(g);
            for (int i = from; i < to; i++) {
                try {
                    moved[i] = moveChunk(chunks.get(first + i), Math.min(c, length - (first + i) * c), delta, rotation, decoder, block);
                } catch (RuntimeException e) {
                    synchronized (failure) {
                        if (failure[0] == null) {
                            failure[0] = e;
                        }
                    }
                }
            }
        };
        if (pool == null) {
            move.run(0, moved.length, 0);
        } else {
            pool.run(move, moved.length);
        }
        if (failure[0] != null) {
            for (KvChunk m : moved) {
                if (m != null) {
                    store.release(m);
                }
            }
            throw failure[0];
        }
        for (int i = 0; i < moved.length; i++) {
            store.release(chunks.set(first + i, moved[i]));
        }
        for (int i = 0; i < dropChunks && chunks.size() > keepChunks; i++) {
            store.release(chunks.remove(keepChunks));
        }
        length -= dropChunks * c;
        return length;
    }

    /** A copy of {@code old} ({@code filled} positions) with its keys rotated by {@code delta}, sealed when full. */
    private KvChunk moveChunk(KvChunk old, int filled, int delta, KeyRotation rotation, KvChunkDecoder decoder, float[] block) {
        KvGeometry g = store.geometry();
        KvChunk moved = store.allocate();
        try {
            for (int layer = 0; layer < g.layers(); layer++) {
                for (int head = 0; head < g.kvHeads(); head++) {
                    decoder.decodeBlock(old, layer, false, head, block);
                    rotation.rotate(block, filled, delta);
                    copyBlock(block, moved, layer, false, head);
                    decoder.decodeBlock(old, layer, true, head, block);
                    copyBlock(block, moved, layer, true, head);
                }
            }
            if (filled == chunkTokens && g.format() != KvFormat.F32) {
                moved = store.seal(moved);
            }
            return moved;
        } catch (RuntimeException e) {
            store.release(moved);
            throw e;
        }
    }

    private static void copyBlock(float[] block, KvChunk f32, int layer, boolean value, int head) {
        MemorySegment.copy(block, 0, f32.data(), ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN),
                f32.layout().blockOffset(layer, value, head), block.length);
    }

    private void requireBoundary() {
        if (length % chunkTokens != 0 || chunks.size() * (long) chunkTokens != length) {
            throw new IllegalStateException("cache of " + length + " positions in " + chunks.size() + " chunks does not end on a chunk boundary");
        }
    }

    /**
     * Full chunks: {@code length / chunkTokens}. Each gets its key summary when sparse decode first
     * needs it, so sealing, appending or resuming costs nothing extra while sparse decode is off.
     */
    public int fullChunks() {
        return length / chunkTokens;
    }

    /** Heap bytes the key summaries of this sequence's full chunks take now (those computed so far). */
    public long summaryBytes() {
        long bytes = 0;
        for (int i = 0, n = fullChunks(); i < n; i++) {
            bytes += chunks.get(i).summaryBytes();
        }
        return bytes;
    }

    /** Bytes of KV this sequence holds resident in its store now (sealed chunks plus the tail; parked chunks not). */
    public long bytes() {
        long sum = 0;
        for (KvChunk c : chunks) {
            if (!c.parked()) {
                sum += c.layout().chunkBytes();
            }
        }
        return sum;
    }

    /**
     * Where parked chunks get their bodies while a step needs them; needed before the first
     * {@link #park}. The cache owns it from now on and closes it (and any earlier one) with itself.
     */
    public void useTransientChunks(TransientChunks t) {
        if (t == null && parked > 0) {
            throw new IllegalStateException("a cache with " + parked + " parked chunks needs transient chunks to read them into");
        }
        if (t != null && !t.layout().geometry().equals(store.geometry())) {
            throw new IllegalArgumentException("transient chunks of another geometry than " + store.geometry());
        }
        if (transientChunks != null && transientChunks != t) {
            for (KvChunk c : chunks) {
                if (c.parked()) {
                    transientChunks.forget(c);
                }
            }
            transientChunks.close();
        }
        transientChunks = t;
    }

    public TransientChunks transientChunks() {
        return transientChunks;
    }

    /**
     * Parks full chunk {@code index} (not the sink, chunk 0): its body goes back to the store (for the hot tier: unpinned) and
     * the cache keeps its key summary and a way to read the body back ({@code fetcher} with
     * {@code key}, which must return exactly the bytes the chunk holds now, e.g. from the warm tier).
     * Attention reads a parked chunk from a transient copy ({@link TransientChunks}), never promoting
     * it back into the store. The chunk keeps the summary it has, or gets one over the whole chunk;
     * sparse decode needs summaries of its own sub-block size ({@link #park(int, ChunkFetcher, Object, int)}).
     */
    public void park(int index, ChunkFetcher fetcher, Object key) {
        KvChunk c = index >= 0 && index < chunks.size() ? chunks.get(index) : null;
        park(index, fetcher, key, c != null && c.summarised() ? c.summaryTokens() : store.geometry().chunkTokens());
    }

    /**
     * Parks full chunk {@code index} as {@link #park(int, ChunkFetcher, Object)} does, with a key
     * summary of {@code summaryTokens} positions per sub-block: what sparse decode will read (it
     * cannot summarise a parked chunk again).
     */
    public void park(int index, ChunkFetcher fetcher, Object key, int summaryTokens) {
        java.util.Objects.requireNonNull(fetcher, "fetcher");
        if (transientChunks == null) {
            throw new IllegalStateException("a cache parks chunks only with transient chunks to read them into (useTransientChunks)");
        }
        if (index < 0 || index >= fullChunks()) {
            throw new IllegalArgumentException("chunk " + index + " is not one of the " + fullChunks() + " full chunks");
        }
        if (index == 0) {
            // Every decode step reads the sink, sparse or dense (and grouped-query selection weighs
            // it before any parked chunk is bound): parking it would only read it back each step.
            throw new IllegalArgumentException("chunk 0 (the attention sink) stays resident; park chunks 1.." + (fullChunks() - 1));
        }
        KvChunk c = chunks.get(index);
        if (c.parked()) {
            throw new IllegalStateException("chunk " + index + " is parked already");
        }
        if (c.summaryTokens() != summaryTokens) {
            c.summarise(summaryTokens, new float[KvChunk.summaryScratchFloats(store.geometry())]);
        }
        chunks.set(index, c.parkedCopy(fetcher, key));
        parked++;
        store.release(c);
    }

    /** Full chunks whose bodies are parked. */
    public int parkedChunks() {
        return parked;
    }

    /**
     * Gives every parked chunk {@code i < count} with {@code need[i]} a body for {@code layer}'s
     * attention (see {@link TransientChunks#bind}); called by the forward pass before the layer's
     * attention runs. A no-op without parked chunks.
     */
    public void bindParked(boolean[] need, int count, int layer) {
        bindParked(need, count, layer, true);
    }

    /**
     * As {@link #bindParked(boolean[], int, int)}; {@code prefetchNext} false leaves the prefetch of the
     * next layer's chunks for a later bind of the same layer (attention in rounds binds a layer's
     * chunks a slot-full at a time).
     */
    public void bindParked(boolean[] need, int count, int layer, boolean prefetchNext) {
        if (parked > 0) {
            transientChunks.bind(chunks, Math.min(count, chunks.size()), need, layer, prefetchNext);
        }
    }

    /** Transient slots for parked chunk bodies: the most parked chunks one round of a layer's attention reads; 0 without. */
    public int transientCapacity() {
        return transientChunks == null ? 0 : transientChunks.capacity();
    }

    private void drop(KvChunk c) {
        if (c.parked()) {
            transientChunks.forget(c);
            parked--;
        } else {
            store.release(c);
        }
    }

    @Override
    public void close() {
        for (KvChunk c : chunks) {
            drop(c);
        }
        chunks.clear();
        length = 0;
        if (transientChunks != null) {
            transientChunks.close();
            transientChunks = null;
        }
    }
}
