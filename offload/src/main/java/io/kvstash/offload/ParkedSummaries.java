package io.kvstash.offload;

import io.kvstash.engine.kv.KvChunk;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The key summaries of parked chunks, kept in memory across turns: a chunk's summary stays here after
 * its turn ends and its body is only in the warm tier, so the next turn that parks the chunk (this
 * session's or any other with the same prefix) takes the summary instead of reading the body back and
 * summarising it again. Least recently used first out, bounded by the summaries' heap bytes; a
 * capacity of 0 keeps nothing. Thread-safe.
 */
final class ParkedSummaries {
    private final long capacityBytes;
    private final LinkedHashMap<ChunkKey, KvChunk> byKey = new LinkedHashMap<>(64, 0.75f, true);
    private long bytes;

    ParkedSummaries(long capacityBytes) {
        if (capacityBytes < 0) {
            throw new IllegalArgumentException("summary capacity must not be negative, got " + capacityBytes);
        }
        this.capacityBytes = capacityBytes;
    }

    /** The parked chunk kept for {@code key} if its summary is of {@code summaryTokens} ({@link KvChunk#summaryTokens}), else null. */
    synchronized KvChunk get(ChunkKey key, int summaryTokens) {
        KvChunk c = byKey.get(key);
        return c != null && c.summaryTokens() == summaryTokens ? c : null;
    }

    /** Keeps {@code parked} (a parked chunk; a handle of its own is kept) for {@code key}, evicting the least recently used past the capacity. */
    synchronized void put(ChunkKey key, KvChunk parked) {
        long size = parked.summaryBytes();
        if (size > capacityBytes) {
            return;
        }
        KvChunk old = byKey.put(key, parked.parkedHandle());
        bytes += size - (old == null ? 0 : old.summaryBytes());
        for (Iterator<Map.Entry<ChunkKey, KvChunk>> it = byKey.entrySet().iterator(); bytes > capacityBytes && it.hasNext(); ) {
            bytes -= it.next().getValue().summaryBytes();
            it.remove();
        }
    }

    /** Forgets {@code key} (its body is gone from the warm tier). */
    synchronized void remove(ChunkKey key) {
        KvChunk old = byKey.remove(key);
        if (old != null) {
            bytes -= old.summaryBytes();
        }
    }

    synchronized long bytes() {
        return bytes;
    }

    synchronized int size() {
        return byKey.size();
    }
}
