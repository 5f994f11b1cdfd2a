package io.kvstash.offload;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvstash.engine.kv.ChunkUnavailableException;
import io.kvstash.engine.kv.KvCache;
import io.kvstash.engine.kv.KvFormat;
import io.kvstash.engine.kv.KvGeometry;
import io.kvstash.engine.kv.SlabKvStore;
import io.kvstash.engine.kv.TransientChunks;
import io.kvstash.engine.model.ModelFingerprint;
import io.kvstash.persistence.WarmStore;
import io.kvstash.persistence.WarmStoreConfig;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Parked chunks read back from a real RocksDB warm tier into transient slots, byte for byte, never into the hot tier. */
class WarmChunkFetcherTest {
    static final int C = 64;
    static final ModelFingerprint MODEL = new ModelFingerprint(new byte[16]);

    @TempDir
    Path dir;

    /** A cache of {@code chunks} full chunks of seeded random keys and values, plus a 5-position tail. */
    static KvCache filled(SlabKvStore store, int chunks) {
        KvGeometry g = store.geometry();
        KvCache cache = new KvCache(store);
        int positions = chunks * C + 5;
        cache.reserve(positions);
        Random r = new Random(7);
        float[] k = new float[g.kvDim()];
        float[] v = new float[g.kvDim()];
        for (int p = 0; p < positions; p++) {
            for (int i = 0; i < k.length; i++) {
                k[i] = (float) r.nextGaussian();
                v[i] = (float) r.nextGaussian();
            }
            for (int layer = 0; layer < g.layers(); layer++) {
                cache.chunk(p / C).write(layer, p % C, k, 0, v, 0);
            }
        }
        cache.setLength(positions);
        return cache;
    }

    @ParameterizedTest
    @EnumSource(KvFormat.class)
    void shouldReadParkedChunksBackByteForByteWhenBound(KvFormat format) {
        KvGeometry g = new KvGeometry(2, 2, 16, C, format);
        try (WarmStore warm = WarmStore.open(WarmStoreConfig.defaults(dir)); SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE);
             KvCache cache = filled(store, 4)) {
            WarmChunkFetcher fetcher = new WarmChunkFetcher(warm, g, MODEL);
            ChunkKey[] keys = ChunkKey.chain("acme", MODEL, format, C, new int[4 * C], 4);
            byte[][] before = new byte[4][];
            float[] bound = new float[4];
            float[] q = new float[16];
            java.util.Arrays.fill(q, 0.5f);
            for (int ch = 0; ch < 4; ch++) {
                before[ch] = cache.chunk(ch).data().toArray(ValueLayout.JAVA_BYTE);
                cache.chunk(ch).summarise(); // summaries are lazy: the parked copies must keep this one
                bound[ch] = cache.chunk(ch).keyScoreBound(1, 1, q, 0);
            }
            long resident = store.bytesInUse();
            cache.useTransientChunks(new TransientChunks(g, 2, false));
            for (int ch = 1; ch < 4; ch++) {
                fetcher.writeAndPark(cache, ch, keys[ch]);
                assertTrue(warm.chunkExists(keys[ch].bytes()));
            }
            assertEquals(resident - 3 * g.chunkBytes(), store.bytesInUse(), "parked bodies left the store");
            assertEquals(3, cache.parkedChunks());
            for (int ch = 1; ch < 4; ch++) {
                assertFalse(cache.chunk(ch).hasBody());
                assertEquals(bound[ch], cache.chunk(ch).keyScoreBound(1, 1, q, 0), "the summary stays with the parked chunk");
            }
            boolean[] need = {true, false, true, true};
            cache.bindParked(need, 4, 0);
            assertFalse(cache.chunk(1).hasBody());
            assertArrayEquals(before[2], cache.chunk(2).data().toArray(ValueLayout.JAVA_BYTE));
            assertArrayEquals(before[3], cache.chunk(3).data().toArray(ValueLayout.JAVA_BYTE));
            need = new boolean[] {false, true, false, true};
            cache.bindParked(need, 4, 1);
            assertArrayEquals(before[1], cache.chunk(1).data().toArray(ValueLayout.JAVA_BYTE));
            assertFalse(cache.chunk(2).hasBody(), "the least recently needed chunk gave up its slot");
            assertEquals(resident - 3 * g.chunkBytes(), store.bytesInUse(), "reading parked chunks allocates nothing in the store");
            assertEquals(3, cache.transientChunks().stats().fetched());
            assertEquals(1, cache.transientChunks().stats().hits());
        }
    }

    @Test
    void shouldReportUnavailableWhenWarmTierLostChunkOrHoldsAnotherModels() {
        KvGeometry g = new KvGeometry(1, 1, 16, C, KvFormat.Q8);
        try (WarmStore warm = WarmStore.open(WarmStoreConfig.defaults(dir)); SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE);
             KvCache cache = filled(store, 3)) {
            ChunkKey[] keys = ChunkKey.chain("acme", MODEL, KvFormat.Q8, C, new int[3 * C], 3);
            cache.useTransientChunks(new TransientChunks(g, 2, false));
            new WarmChunkFetcher(warm, g, MODEL).writeAndPark(cache, 1, keys[1]);
            warm.deleteChunks(java.util.List.of(keys[1].bytes()));
            ChunkUnavailableException e = assertThrows(ChunkUnavailableException.class,
                    () -> cache.bindParked(new boolean[] {false, true, false}, 3, 0));
            assertTrue(e.getMessage().contains(keys[1].toString()), e.getMessage());
            assertFalse(cache.chunk(1).hasBody());
        }
        try (WarmStore warm = WarmStore.open(WarmStoreConfig.defaults(dir)); SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE);
             KvCache cache = filled(store, 3)) {
            ChunkKey[] keys = ChunkKey.chain("acme", MODEL, KvFormat.Q8, C, new int[3 * C], 3);
            cache.useTransientChunks(new TransientChunks(g, 2, false));
            new WarmChunkFetcher(warm, g, MODEL).writeAndPark(cache, 1, keys[1]);
            // Parked with a fetcher that expects another model: the stored chunk's header does not match.
            cache.park(2, new WarmChunkFetcher(warm, g, new ModelFingerprint(new byte[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})), keys[1]);
            assertThrows(ChunkUnavailableException.class, () -> cache.bindParked(new boolean[] {false, false, true}, 3, 0));
        }
    }
}
