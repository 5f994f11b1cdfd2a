package io.kvstash.offload;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvstash.engine.kv.KvCache;
import io.kvstash.engine.kv.KvChunk;
import io.kvstash.engine.kv.KvFormat;
import io.kvstash.engine.kv.KvGeometry;
import io.kvstash.engine.kv.SlabKvStore;
import io.kvstash.engine.kv.TransientChunks;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Summaries of parked chunks kept across turns: least recently used out past the byte capacity, found
 * only with the summary layout asked for, and a cache built from them parks the same chunks (the
 * same sketch scores, the same body source) without reading a body.
 */
class ParkedSummariesTest {
    static final int C = WarmChunkFetcherTest.C;

    @Test
    void shouldKeepTheMostRecentlyUsedWithinCapacityAndParkThemAgainWithoutABody() {
        KvGeometry g = new KvGeometry(2, 2, 16, C, KvFormat.F16);
        List<Object[]> fetched = new ArrayList<>();
        try (SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE); KvCache cache = WarmChunkFetcherTest.filled(store, 5)) {
            cache.useTransientChunks(new TransientChunks(g, 2, false));
            io.kvstash.engine.kv.ChunkFetcher fetcher = (keys, into, from, to) -> fetched.add(keys.clone());
            ChunkKey[] keys = new ChunkKey[5];
            for (int ch = 1; ch < 5; ch++) {
                keys[ch] = new ChunkKey(7, ch);
                cache.park(ch, fetcher, keys[ch], KvChunk.SKETCH);
            }
            long each = KvChunk.summaryBytes(g, KvChunk.SKETCH);
            assertEquals(each, cache.chunk(1).summaryBytes());
            ParkedSummaries kept = new ParkedSummaries(3 * each);
            for (int ch = 1; ch < 5; ch++) {
                kept.put(keys[ch], cache.chunk(ch));
                if (ch == 2) {
                    assertTrue(kept.get(keys[1], KvChunk.SKETCH) != null); // chunk 1 is now the most recently used
                }
            }
            assertEquals(3, kept.size());
            assertEquals(3 * each, kept.bytes());
            assertNull(kept.get(keys[2], KvChunk.SKETCH), "the least recently used went first");
            assertTrue(kept.get(keys[1], KvChunk.SKETCH) != null);
            assertNull(kept.get(keys[3], 16), "a summary of another layout is not the one asked for");
            kept.remove(keys[4]);
            assertEquals(2 * each, kept.bytes());
            assertTrue(new ParkedSummaries(each - 1).get(keys[1], KvChunk.SKETCH) == null);
            ParkedSummaries tiny = new ParkedSummaries(each - 1);
            tiny.put(keys[1], cache.chunk(1));
            assertEquals(0, tiny.size(), "a summary over the capacity is not kept");
            assertThrows(IllegalArgumentException.class, () -> new ParkedSummaries(-1));

            // Another cache (the next turn): the sink resident, chunks 1 and 3 from the kept summaries.
            try (KvCache next = new KvCache(store)) {
                KvChunk sink = store.allocateSealed();
                java.lang.foreign.MemorySegment.copy(cache.chunk(0).data(), 0, sink.data(), 0, sink.data().byteSize());
                next.appendFull(sink);
                assertThrows(IllegalStateException.class, () -> next.appendParked(kept.get(keys[1], KvChunk.SKETCH)),
                        "no transient chunks to read a parked body into");
                next.useTransientChunks(new TransientChunks(g, 2, false));
                next.appendParked(kept.get(keys[1], KvChunk.SKETCH));
                next.appendParked(kept.get(keys[3], KvChunk.SKETCH));
                assertEquals(2, next.parkedChunks());
                assertEquals(3 * C, next.length());
                assertTrue(fetched.isEmpty(), "parking from kept summaries reads no body");
                float[] q = new float[16];
                java.util.Arrays.fill(q, 0.25f);
                float[] a = new float[C];
                float[] b = new float[C];
                float[] scratch = new float[KvChunk.scratchFloats(g)];
                cache.chunk(3).sketchScores(1, 1, q, 0, 1f, a, 0, scratch);
                next.chunk(2).sketchScores(1, 1, q, 0, 1f, b, 0, scratch);
                assertArrayEquals(a, b, "the same sketch");
                assertThrows(IllegalArgumentException.class, () -> next.appendParked(sink), "only parked chunks");
            }
            try (KvCache empty = new KvCache(store)) {
                empty.useTransientChunks(new TransientChunks(g, 1, false));
                assertThrows(IllegalArgumentException.class, () -> empty.appendParked(kept.get(keys[1], KvChunk.SKETCH)),
                        "the sink is never parked");
            }
        }
    }
}
