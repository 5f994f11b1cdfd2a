package io.kvstash.engine.kv;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** One sequence's chunks: reserve, setLength, truncate and close, and what goes back to the store. */
class KvCacheTest {
    static final int C = 16;
    // F32: tails are sealed in place, so chunk identity and byte counts are the same before and after sealing.
    static final KvGeometry GEOMETRY = new KvGeometry(1, 1, 8, C, KvFormat.F32);
    static final long CHUNK = GEOMETRY.chunkBytes();

    @Test
    void shouldReserveWholeChunksWhenAskedForPositions() {
        try (SlabKvStore store = new SlabKvStore(GEOMETRY, Long.MAX_VALUE); KvCache cache = new KvCache(store)) {
            assertSame(GEOMETRY, cache.geometry());
            assertEquals(0, cache.chunkCount());
            cache.reserve(0);
            assertEquals(0, cache.chunkCount());
            cache.reserve(1);
            assertEquals(1, cache.chunkCount());
            cache.reserve(C);
            assertEquals(1, cache.chunkCount());
            cache.reserve(C + 1);
            assertEquals(2, cache.chunkCount());
            cache.reserve(5 * C);
            assertEquals(5, cache.chunkCount());
            cache.reserve(3);
            assertEquals(5, cache.chunkCount(), "reserving less never gives chunks back");
            assertEquals(0, cache.length(), "reserving fills nothing");
            assertEquals(5 * CHUNK, store.bytesInUse());
        }
    }

    @Test
    void shouldAcceptLengthOnlyWithinReservedPositions() {
        try (SlabKvStore store = new SlabKvStore(GEOMETRY, Long.MAX_VALUE); KvCache cache = new KvCache(store)) {
            assertThrows(IllegalArgumentException.class, () -> cache.setLength(1));
            cache.reserve(C + 3);
            cache.setLength(2 * C);
            assertEquals(2 * C, cache.length());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cache.setLength(2 * C + 1));
            assertTrue(e.getMessage().contains(Integer.toString(2 * C + 1)), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> cache.setLength(-1));
            assertEquals(2 * C, cache.length());
            cache.setLength(0);
            assertEquals(0, cache.length());
        }
    }

    @Test
    void shouldReturnWholeChunksToStoreWhenTruncated() {
        try (SlabKvStore store = new SlabKvStore(GEOMETRY, Long.MAX_VALUE); KvCache cache = new KvCache(store)) {
            cache.reserve(4 * C);
            cache.setLength(3 * C + 5); // the fourth chunk is reserved and partly filled
            KvChunk second = cache.chunk(1);
            cache.truncate(3 * C + 1);
            assertEquals(4, cache.chunkCount(), "a chunk still holding a position stays");
            cache.truncate(3 * C);
            assertEquals(3, cache.chunkCount());
            assertEquals(3 * CHUNK, store.bytesInUse());
            cache.truncate(C + 1);
            assertEquals(2, cache.chunkCount());
            assertSame(second, cache.chunk(1), "kept chunks keep their order and identity");
            cache.truncate(C);
            assertEquals(1, cache.chunkCount());
            assertEquals(C, cache.length());
            assertEquals(CHUNK, store.bytesInUse());
            cache.truncate(0);
            assertEquals(0, cache.chunkCount());
            assertEquals(0, cache.length());
            assertEquals(0, store.bytesInUse());
        }
    }

    @Test
    void shouldRefuseTruncatingBeyondLengthOrBelowZero() {
        try (SlabKvStore store = new SlabKvStore(GEOMETRY, Long.MAX_VALUE); KvCache cache = new KvCache(store)) {
            cache.reserve(2 * C);
            cache.setLength(C);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cache.truncate(C + 1));
            assertTrue(e.getMessage().contains(Integer.toString(C)), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> cache.truncate(-1));
            assertEquals(C, cache.length());
            assertEquals(2, cache.chunkCount(), "a refused truncation changes nothing");
        }
    }

    @Test
    void shouldReuseChunksReleasedByTruncationWhenGrowingAgain() {
        try (SlabKvStore store = new SlabKvStore(GEOMETRY, Long.MAX_VALUE); KvCache cache = new KvCache(store)) {
            cache.reserve(3 * C);
            Set<KvChunk> before = identitySet(cache);
            cache.setLength(3 * C);
            cache.truncate(C);
            cache.reserve(3 * C);
            assertEquals(before, identitySet(cache), "the same three chunks, no new memory");
            assertEquals(3 * CHUNK, store.bytesInUse());
        }
    }

    @Test
    void shouldReleaseEverythingOnceWhenClosedTwice() {
        try (SlabKvStore store = new SlabKvStore(GEOMETRY, Long.MAX_VALUE)) {
            KvCache other = new KvCache(store);
            other.reserve(C);
            KvCache cache = new KvCache(store);
            cache.reserve(3 * C);
            cache.setLength(2 * C + 1);
            cache.close();
            assertEquals(0, cache.length());
            assertEquals(0, cache.chunkCount());
            assertEquals(CHUNK, store.bytesInUse(), "only the other sequence's chunk is left");
            cache.close();
            assertEquals(CHUNK, store.bytesInUse(), "a second close must not release the chunks again");
            // Two later allocations must be two different chunks (a double release would hand one out twice).
            assertNotSame(store.allocate(), store.allocate());
            // A closed cache can start over.
            cache.reserve(1);
            assertEquals(1, cache.chunkCount());
            other.close();
            cache.close();
        }
    }

    @Test
    void shouldKeepChunksOfTwoSequencesApart() {
        try (SlabKvStore store = new SlabKvStore(GEOMETRY, Long.MAX_VALUE); KvCache a = new KvCache(store); KvCache b = new KvCache(store)) {
            a.reserve(3 * C);
            b.reserve(3 * C);
            Set<KvChunk> both = identitySet(a);
            both.addAll(identitySet(b));
            assertEquals(6, both.size());
        }
    }

    @Test
    void shouldThrowKvCapacityExceptionWhenReservingPastTheBudgetAndReleaseOnClose() {
        try (SlabKvStore store = new SlabKvStore(GEOMETRY, 2 * CHUNK)) {
            KvCache cache = new KvCache(store);
            cache.reserve(C);
            cache.setLength(C);
            assertThrows(KvCapacityException.class, () -> cache.reserve(3 * C));
            assertEquals(C, cache.length(), "the filled positions survive a refused reservation");
            assertTrue(cache.chunkCount() <= 2);
            cache.close();
            assertEquals(0, store.bytesInUse(), "chunks taken before the refusal go back on close");
        }
    }

    private static Set<KvChunk> identitySet(KvCache cache) {
        Set<KvChunk> s = Collections.newSetFromMap(new IdentityHashMap<>());
        for (int i = 0; i < cache.chunkCount(); i++) {
            s.add(cache.chunk(i));
        }
        return s;
    }

    @Test
    void shouldSealFullChunksAndKeepTheTailInF32WhenFormatIsQuantized() {
        KvGeometry g = new KvGeometry(1, 1, 8, 64, KvFormat.KIVI2);
        try (SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE); KvCache cache = new KvCache(store)) {
            cache.reserve(64);
            cache.setLength(63);
            assertEquals(KvFormat.F32, cache.chunk(0).format(), "a chunk stays open until it is full");
            cache.setLength(64);
            assertEquals(KvFormat.KIVI2, cache.chunk(0).format(), "a full chunk is sealed");
            cache.reserve(65);
            cache.setLength(65);
            assertEquals(KvFormat.F32, cache.chunk(1).format());
            long expected = ChunkLayout.of(g, KvFormat.KIVI2).chunkBytes() + ChunkLayout.of(g, KvFormat.F32).chunkBytes();
            assertEquals(expected, cache.bytes());
            assertEquals(expected, store.bytesInUse(), "the sealed tail went back to the store");
        }
    }

    @Test
    void shouldKeepOnlyWholeChunksWhenTruncatingIntoALossyChunk() {
        KvGeometry g = new KvGeometry(1, 1, 8, 64, KvFormat.Q8);
        try (SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE); KvCache cache = new KvCache(store)) {
            cache.reserve(150);
            cache.setLength(150);
            assertEquals(140, cache.truncate(140), "inside the open tail: exact");
            assertEquals(64, cache.truncate(100), "inside a sealed Q8 chunk: back to its start, the caller recomputes");
            assertEquals(1, cache.chunkCount());
            assertEquals(64, cache.length());
        }
    }
}
