package io.kvstash.offload;

import io.kvstash.engine.kv.ChunkFetcher;
import io.kvstash.engine.kv.ChunkUnavailableException;
import io.kvstash.engine.kv.KvCache;
import io.kvstash.engine.kv.KvChunk;
import io.kvstash.engine.kv.KvGeometry;
import io.kvstash.persistence.ChunkCodec;
import io.kvstash.persistence.ChunkHeader;
import io.kvstash.persistence.ModelFingerprint;
import io.kvstash.persistence.NewChunk;
import io.kvstash.persistence.WarmStore;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

/**
 * Reads parked chunks back from the warm tier: the key a chunk is parked under is its
 * {@link ChunkKey}; each value is read into a reused buffer ({@link WarmStore#readChunk}), checked by
 * {@link ChunkCodec} (CRC, model, format, token count) and its payload copied into the transient
 * slot, as {@code SessionStore} restores chunks, but never registered in the hot tier. A chunk the
 * warm tier does not have, or that fails its checks, is a {@link ChunkUnavailableException}.
 */
public final class WarmChunkFetcher implements ChunkFetcher {
    private final WarmStore warm;
    private final ChunkHeader header;
    private final long chunkBytes;
    // A value read buffer per thread (the forward pass's and the prefetch thread): reading allocates no chunk-sized arrays.
    private final ThreadLocal<byte[]> buffer;
    private final java.util.function.Consumer<ChunkKey> onLost;

    public WarmChunkFetcher(WarmStore warm, KvGeometry geometry, io.kvstash.engine.model.ModelFingerprint model) {
        this(warm, geometry, model, key -> { });
    }

    /** With {@code onLost} told of every chunk a fetch finds missing or damaged, before the fetch fails. */
    public WarmChunkFetcher(WarmStore warm, KvGeometry geometry, io.kvstash.engine.model.ModelFingerprint model,
                            java.util.function.Consumer<ChunkKey> onLost) {
        this.onLost = java.util.Objects.requireNonNull(onLost, "onLost");
        this.warm = warm;
        this.header = new ChunkHeader((byte) geometry.format().ordinal(), geometry.chunkTokens(), ModelFingerprint.of(model.bytes()));
        this.chunkBytes = geometry.chunkBytes();
        this.buffer = ThreadLocal.withInitial(() -> new byte[Math.toIntExact(ChunkCodec.PREFIX_BYTES + chunkBytes)]);
    }

    /** The header chunks of this geometry and model are stored under (as {@code SessionStore} writes them). */
    public ChunkHeader header() {
        return header;
    }

    /**
     * Writes full chunk {@code index} of {@code cache} to the warm tier under {@code key} unless it is
     * there already, then parks it (see {@link KvCache#park}).
     */
    public void writeAndPark(KvCache cache, int index, ChunkKey key) {
        writeAndPark(cache, index, key, cache.geometry().chunkTokens());
    }

    /** As {@link #writeAndPark(KvCache, int, ChunkKey)}, with key summaries of {@code summaryTokens} positions per sub-block. */
    public void writeAndPark(KvCache cache, int index, ChunkKey key, int summaryTokens) {
        KvChunk chunk = cache.chunk(index);
        if (!warm.chunkExists(key.bytes())) {
            warm.putChunks(List.of(new NewChunk(key.bytes(), header, chunk.data().toArray(ValueLayout.JAVA_BYTE))));
        }
        cache.park(index, this, key, summaryTokens);
    }

    @Override
    public void fetch(Object[] keys, MemorySegment[] into, int from, int to) {
        byte[] value = buffer.get();
        for (int i = from; i < to; i++) {
            ChunkKey key = (ChunkKey) keys[i];
            int n = warm.readChunk(key.bytes(), header, value);
            if (n < 0) {
                onLost.accept(key);
                throw new ChunkUnavailableException("parked chunk " + key + " is not in the warm tier (missing or failed its checks)");
            }
            if (n != chunkBytes || into[i].byteSize() != chunkBytes) {
                onLost.accept(key);
                throw new ChunkUnavailableException("parked chunk " + key + " has " + n + " bytes in the warm tier, a chunk here has "
                        + chunkBytes);
            }
            MemorySegment.copy(value, ChunkCodec.PREFIX_BYTES, into[i], ValueLayout.JAVA_BYTE, 0, n);
        }
    }
}
