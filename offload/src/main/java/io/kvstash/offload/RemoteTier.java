package io.kvstash.offload;

import io.kvstash.persistence.ChunkHeader;
import java.util.List;
import java.util.Optional;

/**
 * A tier shared by replicas (Redis / Valkey): full chunks under their content keys, written in
 * the background and read when neither the hot nor the warm tier has them. Best effort by
 * contract: a slow, broken or absent remote store costs a recompute, never an error for a turn, so
 * no method here throws for a fault of the store; faults are counted in {@link #stats()}.
 *
 * <p>Values are {@link io.kvstash.persistence.ChunkCodec} encodings (versioned, CRC-checked, bound
 * to the model and KV format): a value that does not decode to the expected chunk is a miss. The
 * tenant is part of every {@link ChunkKey} (the key chain starts from the tenant), so one tenant
 * never reads another's chunks.
 */
public interface RemoteTier extends AutoCloseable {
    /** Counters since start, in chunks; {@code queued}: chunks accepted for writing and not yet written, failed or dropped. */
    record Stats(long hits, long misses, long errors, long rejected, long writes, long writeErrors, long drops, long queued) {}

    /**
     * The payloads of {@code keys} in order: present for a chunk the store had and that decoded as
     * {@code expected}; empty for a miss, a rejected value, or when the store failed, timed out or
     * is being left alone after a recent failure. Blocks at most about one read timeout.
     */
    List<Optional<byte[]>> get(List<ChunkKey> keys, ChunkHeader expected);

    /** Queues a chunk for writing; never blocks: when the queue is full the chunk is dropped (and counted). */
    void put(ChunkKey key, ChunkHeader header, byte[] payload);

    Stats stats();

    /** Writes what is queued (bounded in time), then releases the connection. Idempotent. */
    @Override
    void close();
}
