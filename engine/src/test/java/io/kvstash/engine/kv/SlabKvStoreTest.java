package io.kvstash.engine.kv;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.Test;

/** Allocation, recycling, accounting and limits of {@link SlabKvStore}. */
class SlabKvStoreTest {
    /** 2 layers × 2 KV heads × 64 tokens × 16 dims × F32, keys and values: 32 KiB a chunk. */
    static final KvGeometry GEOMETRY = new KvGeometry(2, 2, 16, 64, KvFormat.F32);
    static final long CHUNK = GEOMETRY.chunkBytes();

    @Test
    void shouldCountBytesInUseWhenChunksAreAllocatedAndReleased() {
        assertEquals(32 * 1024, CHUNK);
        try (SlabKvStore store = new SlabKvStore(GEOMETRY, Long.MAX_VALUE)) {
            assertEquals(0, store.bytesInUse());
            KvChunk a = store.allocate();
            KvChunk b = store.allocate();
            assertEquals(2 * CHUNK, store.bytesInUse());
            assertEquals(CHUNK, a.data().byteSize());
            assertSame(GEOMETRY, a.geometry());
            store.release(a);
            assertEquals(CHUNK, store.bytesInUse());
            store.release(b);
            assertEquals(0, store.bytesInUse());
        }
    }

    @Test
    void shouldReuseReleasedChunkWhenAllocatingAgain() {
        try (SlabKvStore store = new SlabKvStore(GEOMETRY, Long.MAX_VALUE)) {
            KvChunk a = store.allocate();
            KvChunk b = store.allocate();
            assertNotSame(a, b);
            store.release(a);
            assertSame(a, store.allocate(), "the released chunk comes back first");
        }
        // A budget of exactly two chunks keeps working as long as chunks go back.
        try (SlabKvStore store = new SlabKvStore(GEOMETRY, 2 * CHUNK)) {
            Set<KvChunk> seen = Collections.newSetFromMap(new IdentityHashMap<>());
            for (int i = 0; i < 50; i++) {
                KvChunk x = store.allocate();
                KvChunk y = store.allocate();
                seen.add(x);
                seen.add(y);
                store.release(y);
                store.release(x);
            }
            assertEquals(2, seen.size(), "only the two chunks of the budget are ever handed out");
            assertEquals(0, store.bytesInUse());
        }
    }

    @Test
    void shouldThrowKvCapacityExceptionWhenBudgetIsExhausted() {
        // Three and a half chunks: room for three.
        try (SlabKvStore store = new SlabKvStore(GEOMETRY, 3 * CHUNK + CHUNK / 2)) {
            List<KvChunk> held = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                held.add(store.allocate());
            }
            KvCapacityException e = assertThrows(KvCapacityException.class, store::allocate);
            assertTrue(e.getMessage().contains(Long.toString(3 * CHUNK + CHUNK / 2)), e.getMessage());
            assertEquals(3 * CHUNK, store.bytesInUse(), "a refused allocation changes nothing");
            store.release(held.removeLast());
            held.add(store.allocate()); // room again after a release
            assertThrows(KvCapacityException.class, store::allocate);
        }
    }

    @Test
    void shouldThrowKvCapacityExceptionWhenBudgetIsSmallerThanOneChunk() {
        try (SlabKvStore store = new SlabKvStore(GEOMETRY, CHUNK - 1)) {
            assertThrows(KvCapacityException.class, store::allocate);
            assertEquals(0, store.bytesInUse());
        }
    }

    @Test
    void shouldRefuseAllocationWhenClosed() {
        SlabKvStore store = new SlabKvStore(GEOMETRY, Long.MAX_VALUE);
        KvChunk a = store.allocate();
        store.close();
        IllegalStateException e = assertThrows(IllegalStateException.class, store::allocate);
        assertTrue(e.getMessage().contains("closed"), e.getMessage());
        store.release(a); // ignored: the memory went with the store
        store.close(); // idempotent
        assertThrows(IllegalStateException.class, store::allocate);
    }

    @Test
    void shouldRefuseChunkOfAnotherGeometry() {
        KvGeometry other = new KvGeometry(2, 2, 16, 32, KvFormat.F32);
        try (SlabKvStore store = new SlabKvStore(GEOMETRY, Long.MAX_VALUE); SlabKvStore otherStore = new SlabKvStore(other, Long.MAX_VALUE)) {
            KvChunk foreign = otherStore.allocate();
            assertThrows(IllegalArgumentException.class, () -> store.release(foreign));
            assertEquals(0, store.bytesInUse());
        }
    }

    @Test
    void shouldHandOutDisjointMemoryWhenChunksSpanSeveralSlabs() {
        // A 64 MiB slab target holds at most 1024 chunks: 1100 chunks need a second slab.
        try (SlabKvStore store = new SlabKvStore(GEOMETRY, Long.MAX_VALUE)) {
            List<KvChunk> chunks = new ArrayList<>();
            for (int i = 0; i < 1100; i++) {
                chunks.add(store.allocate());
            }
            assertEquals(1100 * CHUNK, store.bytesInUse());
            chunks.sort(Comparator.comparingLong(c -> c.data().address()));
            for (int i = 1; i < chunks.size(); i++) {
                long prevEnd = chunks.get(i - 1).data().address() + CHUNK;
                assertTrue(chunks.get(i).data().address() >= prevEnd, "chunks " + (i - 1) + " and " + i + " overlap");
            }
            // Writable end to end, and what is written to one chunk stays there.
            for (int i = 0; i < chunks.size(); i++) {
                chunks.get(i).data().set(JAVA_INT, 0, i);
                chunks.get(i).data().set(JAVA_INT, CHUNK - 4, -i);
            }
            for (int i = 0; i < chunks.size(); i++) {
                assertEquals(i, chunks.get(i).data().get(JAVA_INT, 0));
                assertEquals(-i, chunks.get(i).data().get(JAVA_INT, CHUNK - 4));
            }
        }
    }

    @Test
    void shouldKeepAccountsWhenThreadsAllocateAndReleaseConcurrently() throws InterruptedException {
        try (SlabKvStore store = new SlabKvStore(GEOMETRY, 64 * CHUNK)) {
            int threads = 4;
            ConcurrentLinkedQueue<Throwable> failures = new ConcurrentLinkedQueue<>();
            ConcurrentLinkedQueue<KvChunk> stillHeld = new ConcurrentLinkedQueue<>();
            CountDownLatch start = new CountDownLatch(1);
            List<Thread> ts = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                ts.add(Thread.ofPlatform().start(() -> {
                    try {
                        start.await();
                        List<KvChunk> mine = new ArrayList<>();
                        for (int i = 0; i < 2000; i++) {
                            if (mine.size() < 16 && (i % 3 != 2)) {
                                mine.add(store.allocate());
                            } else if (!mine.isEmpty()) {
                                store.release(mine.removeLast());
                            }
                        }
                        stillHeld.addAll(mine);
                    } catch (Throwable e) {
                        failures.add(e);
                    }
                }));
            }
            start.countDown();
            for (Thread t : ts) {
                t.join();
            }
            assertTrue(failures.isEmpty(), () -> "failures: " + failures);
            assertEquals(stillHeld.size() * CHUNK, store.bytesInUse());
            Set<Long> addresses = new HashSet<>();
            for (KvChunk c : stillHeld) {
                assertTrue(addresses.add(c.data().address()), "one chunk handed to two owners");
            }
        }
    }
}
