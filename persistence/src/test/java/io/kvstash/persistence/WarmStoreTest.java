package io.kvstash.persistence;

import static io.kvstash.persistence.TestChunks.HEADER;
import static io.kvstash.persistence.TestChunks.chunk;
import static io.kvstash.persistence.TestChunks.id;
import static io.kvstash.persistence.TestChunks.key;
import static io.kvstash.persistence.TestChunks.payloadFor;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@link WarmStore} against a real RocksDB in a temporary directory. */
class WarmStoreTest {
    @TempDir
    Path dir;

    private WarmStore open() {
        return open(dir.resolve("store"));
    }

    private static WarmStore open(Path path) {
        return WarmStore.open(WarmStoreConfig.defaults(path).withBlockCacheBytes(8L << 20).withWriteBufferBytes(4L << 20));
    }

    private static void assertChunk(WarmStore store, NewChunk expected) {
        Optional<byte[]> got = store.getChunk(expected.key(), expected.header());
        assertTrue(got.isPresent(), "chunk " + Keys.hex(expected.key()) + " missing");
        assertArrayEquals(expected.payload(), got.get());
    }

    // ---- round trips ----

    @Test
    void shouldReadBackSessionAndChunksWhenWrittenTogether() {
        try (WarmStore store = open()) {
            NewChunk a = chunk("a");
            NewChunk b = chunk("b");
            store.writeSession(id("s1"), "record".getBytes(StandardCharsets.UTF_8), List.of(a, b));
            assertArrayEquals("record".getBytes(StandardCharsets.UTF_8), store.getSession(id("s1")).orElseThrow());
            assertChunk(store, a);
            assertChunk(store, b);
            assertTrue(store.chunkExists(a.key()));
            assertFalse(store.chunkExists(key("never written")));
            assertTrue(store.getSession(id("s2")).isEmpty());
            assertEquals(0, store.rejectedChunkReads());
        }
    }

    @Test
    void shouldOverwriteSessionWhenWrittenAgainWithNoNewChunks() {
        try (WarmStore store = open()) {
            store.writeSession(id("s"), new byte[] {1}, List.of(chunk("x")));
            store.writeSession(id("s"), new byte[] {2}, List.of());
            assertArrayEquals(new byte[] {2}, store.getSession(id("s")).orElseThrow());
            assertChunk(store, chunk("x"));
        }
    }

    @Test
    void shouldReturnEmptyForMissingKeysWhenMultiGetting() {
        try (WarmStore store = open()) {
            NewChunk a = chunk("a");
            NewChunk c = chunk("c");
            store.putChunks(List.of(a, c));
            List<Optional<byte[]>> got = store.getChunks(List.of(a.key(), key("b"), c.key(), key("d")), HEADER);
            assertEquals(4, got.size());
            assertArrayEquals(a.payload(), got.get(0).orElseThrow());
            assertTrue(got.get(1).isEmpty());
            assertArrayEquals(c.payload(), got.get(2).orElseThrow());
            assertTrue(got.get(3).isEmpty());
            assertEquals(List.of(), store.getChunks(List.of(), HEADER));
        }
    }

    @Test
    void shouldDeleteSessionAndItsChunksTogetherWhenAsked() {
        try (WarmStore store = open()) {
            NewChunk own = chunk("own");
            NewChunk shared = chunk("shared");
            store.writeSession(id("s"), new byte[] {1}, List.of(own, shared));
            store.deleteSession(id("s"), List.of(own.key()));
            assertTrue(store.getSession(id("s")).isEmpty());
            assertFalse(store.chunkExists(own.key()));
            assertChunk(store, shared);
            store.deleteChunks(List.of(shared.key(), key("not there")));
            assertFalse(store.chunkExists(shared.key()));
        }
    }

    @Test
    void shouldStoreMetaAndRefuseReservedNamesWhenPutting() {
        try (WarmStore store = open()) {
            store.putMeta("model.stories15M", new byte[] {9, 9});
            assertArrayEquals(new byte[] {9, 9}, store.getMeta("model.stories15M").orElseThrow());
            assertTrue(store.getMeta("other").isEmpty());
            assertArrayEquals(ByteBuffer.allocate(4).putInt(1).array(), store.getMeta("kvstash.schema-version").orElseThrow());
            IllegalArgumentException reserved = assertThrows(IllegalArgumentException.class,
                    () -> store.putMeta("kvstash.schema-version", new byte[4]));
            assertTrue(reserved.getMessage().contains("reserved"), reserved.getMessage());
            assertThrows(IllegalArgumentException.class, () -> store.getMeta(" "));
        }
    }

    // ---- atomicity ----

    @Test
    void shouldWriteNothingWhenAnyChunkOfTheBatchIsInvalid() {
        try (WarmStore store = open()) {
            NewChunk good = chunk("good");
            List<NewChunk> withNull = new ArrayList<>();
            withNull.add(good);
            withNull.add(null);
            assertThrows(NullPointerException.class, () -> store.writeSession(id("s"), new byte[1], withNull));
            assertTrue(store.getSession(id("s")).isEmpty());
            assertFalse(store.chunkExists(good.key()));
        }
    }

    @Test
    void shouldNeverShowSessionWithoutItsChunksWhenReadWhileWriting() throws Exception {
        int sessions = 400;
        try (WarmStore store = open()) {
            AtomicInteger written = new AtomicInteger(-1);
            AtomicBoolean done = new AtomicBoolean();
            Set<String> violations = ConcurrentHashMap.newKeySet();
            AtomicLong observations = new AtomicLong();
            Thread reader = Thread.ofPlatform().start(() -> {
                while (!done.get()) {
                    // The session being written now or next: the window a non-atomic write would expose.
                    int i = written.get() + 1;
                    List<byte[]> keys = List.of(key(i + "/0"), key(i + "/1"), key(i + "/2"));
                    // (A chunk visible before its session is fine: chunks may be stored alone.)
                    if (store.getSession(id("s" + i)).isPresent()
                            && store.getChunks(keys, HEADER).stream().anyMatch(Optional::isEmpty)) {
                        violations.add("s" + i + " visible without all its chunks");
                    }
                    observations.incrementAndGet();
                }
            });
            for (int i = 0; i < sessions; i++) {
                store.writeSession(id("s" + i), new byte[] {(byte) i},
                        List.of(chunk(i + "/0"), chunk(i + "/1"), chunk(i + "/2")));
                written.set(i);
            }
            done.set(true);
            reader.join();
            assertEquals(Set.of(), Set.copyOf(violations));
            assertTrue(observations.get() > 10, "the reader ran " + observations.get() + " times");
        }
    }

    @Test
    void shouldReadChunkIntoBufferWhenItFitsAndReportMissingOrTooLongOtherwise() {
        try (WarmStore store = open()) {
            NewChunk a = chunk("a");
            store.putChunks(List.of(a));
            int valueBytes = ChunkCodec.PREFIX_BYTES + a.payload().length;
            byte[] buffer = new byte[valueBytes + 100];
            java.util.Arrays.fill(buffer, (byte) 0x5A);
            assertEquals(a.payload().length, store.readChunk(a.key(), HEADER, buffer));
            assertArrayEquals(a.payload(), java.util.Arrays.copyOfRange(buffer, ChunkCodec.PREFIX_BYTES, valueBytes));
            assertEquals(-1, store.readChunk(key("absent"), HEADER, buffer));
            assertEquals(0, store.rejectedChunkReads(), "absent is not rejected");
            assertEquals(-1, store.readChunk(a.key(), HEADER, new byte[valueBytes - 1]));
            assertEquals(1, store.rejectedChunkReads(), "a value longer than the buffer is rejected, never returned cut");
        }
    }

    // ---- corruption ----

    @Test
    void shouldTreatChunkAsMissingWhenStoredValueIsDamagedOrForeign() throws Exception {
        Path path = dir.resolve("store");
        NewChunk flipped = chunk("flipped");
        NewChunk truncated = chunk("truncated");
        NewChunk intact = chunk("intact");
        try (WarmStore store = open(path)) {
            store.putChunks(List.of(flipped, truncated, intact));
        }
        byte[] flippedValue = ChunkCodec.encode(HEADER, flipped.payload());
        flippedValue[flippedValue.length - 7] ^= 0x04;
        RawRocks.put(path, OpenDatabase.CHUNKS, flipped.key(), flippedValue);
        byte[] truncatedValue = ChunkCodec.encode(HEADER, truncated.payload());
        RawRocks.put(path, OpenDatabase.CHUNKS, truncated.key(), java.util.Arrays.copyOf(truncatedValue, truncatedValue.length - 1));
        try (WarmStore store = open(path)) {
            assertTrue(store.getChunk(flipped.key(), HEADER).isEmpty());
            assertTrue(store.getChunk(truncated.key(), HEADER).isEmpty());
            assertEquals(2, store.rejectedChunkReads());
            List<Optional<byte[]>> batch = store.getChunks(List.of(flipped.key(), intact.key(), truncated.key()), HEADER);
            assertTrue(batch.get(0).isEmpty());
            assertArrayEquals(intact.payload(), batch.get(1).orElseThrow());
            assertTrue(batch.get(2).isEmpty());
            assertEquals(4, store.rejectedChunkReads());
            ChunkHeader otherModel = new ChunkHeader(HEADER.kvFormat(), HEADER.tokenCount(), new ModelFingerprint(7, 7));
            assertTrue(store.getChunk(intact.key(), otherModel).isEmpty(), "a chunk of another model is not data");
            assertEquals(5, store.rejectedChunkReads());
            byte[] buffer = new byte[ChunkCodec.PREFIX_BYTES + 64 * 1024];
            assertEquals(-1, store.readChunk(flipped.key(), HEADER, buffer));
            assertEquals(-1, store.readChunk(truncated.key(), HEADER, buffer));
            assertEquals(-1, store.readChunk(intact.key(), otherModel, buffer));
            assertEquals(8, store.rejectedChunkReads());
            assertEquals(intact.payload().length, store.readChunk(intact.key(), HEADER, buffer));
            // Writing the chunk again repairs it.
            store.putChunks(List.of(flipped));
            assertChunk(store, flipped);
        }
    }

    // ---- lifecycle ----

    @Test
    void shouldFindDataWhenReopenedAfterClose() {
        Path path = dir.resolve("store");
        NewChunk a = chunk("a");
        try (WarmStore store = open(path)) {
            store.writeSession(id("s"), new byte[] {42}, List.of(a));
            store.putMeta("m", new byte[] {7});
        }
        try (WarmStore store = open(path)) {
            assertArrayEquals(new byte[] {42}, store.getSession(id("s")).orElseThrow());
            assertChunk(store, a);
            assertArrayEquals(new byte[] {7}, store.getMeta("m").orElseThrow());
        }
    }

    @Test
    void shouldDoNothingWhenClosedTwice() {
        WarmStore store = open();
        store.close();
        assertTrue(store.isClosed());
        assertDoesNotThrow(store::close);
        // And the directory is free again: a second open in this process would fail otherwise.
        open().close();
    }

    @Test
    void shouldFailWithStoreClosedWhenUsedAfterClose() {
        WarmStore store = open();
        store.close();
        StoreClosedException e = assertThrows(StoreClosedException.class, () -> store.getChunk(key("a"), HEADER));
        assertEquals("getChunk", e.operation());
        assertTrue(e.getMessage().contains("store is closed"), e.getMessage());
        assertTrue(e.getMessage().contains(dir.resolve("store").toString()), e.getMessage());
        assertThrows(StoreClosedException.class, () -> store.writeSession(id("s"), new byte[0], List.of()));
        assertThrows(StoreClosedException.class, () -> store.listSessions(null, 10));
        assertThrows(StoreClosedException.class, store::diskUsage);
        assertThrows(StoreClosedException.class, store::clearBlockCache);
    }

    @Test
    void shouldFailWithClearErrorWhenPathIsAFile() throws IOException {
        Path file = Files.writeString(dir.resolve("not-a-directory"), "x");
        StoreException e = assertThrows(StoreException.class, () -> open(file));
        assertEquals("open", e.operation());
        assertEquals(file, e.path());
        assertTrue(e.getMessage().startsWith("warm store " + file + ": open: IOError"), e.getMessage());
    }

    @Test
    void shouldReleaseTheDatabaseWhenOpenFailsAfterOpeningIt() throws Exception {
        Path path = dir.resolve("store");
        open(path).close();
        RawRocks.put(path, OpenDatabase.META, OpenDatabase.SCHEMA_VERSION_KEY, ByteBuffer.allocate(4).putInt(99).array());
        StoreException e = assertThrows(StoreException.class, () -> open(path));
        assertTrue(e.getMessage().contains("schema version 99, this build reads version 1"), e.getMessage());
        // The failed open unwound: the database's lock is free for the next opener in this process.
        assertDoesNotThrow(() -> RawRocks.openAndClose(path));
    }

    @Test
    void shouldWaitForInFlightOperationsWhenClosing() throws Exception {
        WarmStore store = open();
        for (int i = 0; i < 50; i++) {
            store.writeSession(id("s" + i), new byte[] {1}, List.of(chunk("c" + i)));
        }
        int threads = 4;
        CountDownLatch started = new CountDownLatch(threads);
        ConcurrentLinkedQueue<Throwable> unexpected = new ConcurrentLinkedQueue<>();
        AtomicLong completed = new AtomicLong();
        List<Thread> workers = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            int worker = t;
            workers.add(Thread.ofPlatform().start(() -> {
                started.countDown();
                try {
                    for (int n = 0; ; n++) {
                        switch (n % 4) {
                            case 0 -> store.writeSession(id("w" + worker + "/" + n), new byte[] {2}, List.of(chunk(worker + "/" + n)));
                            case 1 -> store.getChunks(List.of(key("c1"), key("c2"), key("c3")), HEADER);
                            case 2 -> store.listSessions(null, 20);
                            default -> {
                                try (SessionScan scan = store.scanSessions(null)) {
                                    while (scan.hasNext()) {
                                        scan.next();
                                    }
                                }
                            }
                        }
                        completed.incrementAndGet();
                    }
                } catch (StoreClosedException expected) {
                    // the only way out
                } catch (Throwable t2) {
                    unexpected.add(t2);
                }
            }));
        }
        started.await();
        Thread.sleep(300);
        store.close();
        for (Thread w : workers) {
            assertTrue(w.join(java.time.Duration.ofSeconds(20)), "a worker did not stop after close");
        }
        assertEquals(List.of(), List.copyOf(unexpected));
        assertTrue(completed.get() > 0);
    }

    // ---- concurrency ----

    @Test
    void shouldKeepEveryWriteWhenSeveralThreadsWrite() throws Exception {
        int threads = 4;
        int perThread = 100;
        try (WarmStore store = open()) {
            CountDownLatch go = new CountDownLatch(1);
            ConcurrentLinkedQueue<Throwable> failures = new ConcurrentLinkedQueue<>();
            List<Thread> writers = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int writer = t;
                writers.add(Thread.ofPlatform().start(() -> {
                    try {
                        go.await();
                        for (int i = 0; i < perThread; i++) {
                            // Every writer also rewrites one shared prefix chunk, as sessions sharing a prompt do.
                            store.writeSession(id(writer + "/" + i), new byte[] {(byte) writer, (byte) i},
                                    List.of(chunk("prefix"), chunk(writer + "/" + i + "/a"), chunk(writer + "/" + i + "/b")));
                        }
                    } catch (Throwable e) {
                        failures.add(e);
                    }
                }));
            }
            go.countDown();
            for (Thread w : writers) {
                w.join();
            }
            assertEquals(List.of(), List.copyOf(failures));
            int sessions = 0;
            try (SessionScan scan = store.scanSessions(null)) {
                while (scan.hasNext()) {
                    scan.next();
                    sessions++;
                }
            }
            assertEquals(threads * perThread, sessions);
            for (int t = 0; t < threads; t++) {
                for (int i = 0; i < perThread; i++) {
                    assertArrayEquals(new byte[] {(byte) t, (byte) i}, store.getSession(id(t + "/" + i)).orElseThrow());
                    assertChunk(store, chunk(t + "/" + i + "/a"));
                    assertChunk(store, chunk(t + "/" + i + "/b"));
                }
            }
            assertChunk(store, chunk("prefix"));
        }
    }

    // ---- listing ----

    @Test
    void shouldListSessionsPageByPageWhenStartingAfterCursor() {
        try (WarmStore store = open()) {
            for (int i = 0; i < 25; i++) {
                store.writeSession(id(String.format("s%03d", i)), new byte[] {1}, List.of());
            }
            List<String> seen = new ArrayList<>();
            byte[] cursor = null;
            int pages = 0;
            while (true) {
                SessionPage page = store.listSessions(cursor, 10);
                pages++;
                page.sessionIds().forEach(s -> seen.add(new String(s, StandardCharsets.UTF_8)));
                if (page.nextStartAfter().isEmpty()) {
                    break;
                }
                cursor = page.nextStartAfter().get();
            }
            assertEquals(3, pages);
            assertEquals(25, seen.size());
            assertEquals("s000", seen.getFirst());
            assertEquals("s024", seen.getLast());
            assertEquals(seen.stream().sorted().toList(), seen);
            // A cursor that is not itself a stored id still works.
            assertEquals("s011", new String(store.listSessions(id("s010x"), 1).sessionIds().getFirst(), StandardCharsets.UTF_8));
            assertFalse(store.listSessions(id("s024"), 5).more());
            assertTrue(store.listSessions(id("s024"), 5).sessionIds().isEmpty());
            assertThrows(IllegalArgumentException.class, () -> store.listSessions(null, 0));
        }
    }

    @Test
    void shouldFailScanWithoutCrashingWhenStoreClosesUnderIt() {
        WarmStore store = open();
        store.writeSession(id("a"), new byte[] {1}, List.of());
        store.writeSession(id("b"), new byte[] {1}, List.of());
        SessionScan scan = store.scanSessions(null);
        assertArrayEquals(id("a"), scan.next());
        assertEquals(1, store.openScans());
        store.close();
        assertThrows(StoreClosedException.class, scan::hasNext);
        assertDoesNotThrow(scan::close);
    }

    @Test
    void shouldForgetScanWhenItIsClosed() {
        try (WarmStore store = open()) {
            store.writeSession(id("a"), new byte[] {1}, List.of());
            SessionScan scan = store.scanSessions(id("a"));
            assertFalse(scan.hasNext());
            scan.close();
            assertEquals(0, store.openScans());
            IllegalStateException e = assertThrows(IllegalStateException.class, scan::hasNext);
            assertTrue(e.getMessage().contains("scan is closed"), e.getMessage());
        }
    }

    // ---- maintenance ----

    @Test
    void shouldOpenCheckpointAsStoreWithTheSameData() {
        Path copy = dir.resolve("backups/one");
        NewChunk a = chunk("a");
        try (WarmStore store = open()) {
            store.writeSession(id("s"), new byte[] {5}, List.of(a));
            store.checkpoint(copy);
            store.writeSession(id("after"), new byte[] {6}, List.of());
            IllegalArgumentException exists = assertThrows(IllegalArgumentException.class, () -> store.checkpoint(copy));
            assertTrue(exists.getMessage().contains("already exists"), exists.getMessage());
        }
        try (WarmStore restored = open(copy)) {
            assertArrayEquals(new byte[] {5}, restored.getSession(id("s")).orElseThrow());
            assertChunk(restored, a);
            assertTrue(restored.getSession(id("after")).isEmpty(), "the checkpoint is a point in time");
        }
    }

    @Test
    void shouldEmptyTheBlockCacheAndKeepDataWhenCleared() {
        // Without blob files chunk values are table blocks, so reading them fills the block cache.
        Path path = dir.resolve("tables");
        try (WarmStore store = WarmStore.open(WarmStoreConfig.defaults(path).withBlobFiles(false).withBlockCacheBytes(8L << 20))) {
            List<NewChunk> chunks = new ArrayList<>();
            for (int i = 0; i < 40; i++) {
                chunks.add(chunk("c" + i));
            }
            store.writeSession(id("s"), new byte[] {1}, chunks);
            store.flush();
            for (NewChunk c : chunks) {
                assertChunk(store, c);
            }
            long warm = store.blockCacheUsage();
            assertTrue(warm > 40 * 1024, "reads from table files fill the cache: " + warm);
            store.clearBlockCache();
            long cold = store.blockCacheUsage();
            assertTrue(cold < warm / 10, "cache after clearing " + cold + ", before " + warm);
            for (NewChunk c : chunks) {
                assertChunk(store, c);
            }
            assertArrayEquals(new byte[] {1}, store.getSession(id("s")).orElseThrow());
        }
    }

    @Test
    void shouldCountTableAndWalBytesWhenReportingDiskUsage() {
        Path path = dir.resolve("tables");
        try (WarmStore store = WarmStore.open(WarmStoreConfig.defaults(path).withBlobFiles(false).withBlockCacheBytes(8L << 20))) {
            DiskUsage empty = store.diskUsage();
            List<NewChunk> chunks = new ArrayList<>();
            long payloadBytes = 0;
            for (int i = 0; i < 100; i++) {
                byte[] k = key("big" + i);
                NewChunk c = new NewChunk(k, HEADER, payloadFor(k, 20_000, 20_000));
                chunks.add(c);
                payloadBytes += c.payload().length;
            }
            store.putChunks(chunks);
            DiskUsage beforeFlush = store.diskUsage();
            assertTrue(beforeFlush.walBytes() >= payloadBytes, "the WAL holds the write: " + beforeFlush);
            store.flush();
            DiskUsage afterFlush = store.diskUsage();
            // The payloads are compressible to about half; tables must hold them in some form.
            assertTrue(afterFlush.tableFileBytes() > payloadBytes / 4, afterFlush + " for " + payloadBytes);
            assertTrue(afterFlush.totalBytes() > empty.totalBytes());
            assertEquals(0, afterFlush.blobFileBytes());
        }
    }

    @Test
    void shouldPutLargeChunksInBlobFilesWhenEnabled() {
        Path path = dir.resolve("blobs");
        try (WarmStore store = WarmStore.open(WarmStoreConfig.defaults(path).withBlobFiles(true).withBlockCacheBytes(8L << 20))) {
            byte[] k = key("big");
            NewChunk c = new NewChunk(k, HEADER, payloadFor(k, 50_000, 50_000));
            store.putChunks(List.of(c));
            store.flush();
            assertTrue(store.diskUsage().blobFileBytes() > 10_000, store.diskUsage().toString());
            assertChunk(store, c);
            store.deleteChunks(List.of(k));
            store.compact();
            assertFalse(store.chunkExists(k));
        }
    }

    @Test
    void shouldRefuseBadArgumentsWithMessagesNamingThem() {
        try (WarmStore store = open()) {
            IllegalArgumentException empty = assertThrows(IllegalArgumentException.class, () -> store.getChunk(new byte[0], HEADER));
            assertEquals("chunk key must not be empty", empty.getMessage());
            IllegalArgumentException nullId = assertThrows(IllegalArgumentException.class, () -> store.getSession(null));
            assertEquals("session id must not be null", nullId.getMessage());
            IllegalArgumentException longKey = assertThrows(IllegalArgumentException.class,
                    () -> store.chunkExists(new byte[Keys.MAX_KEY_BYTES + 1]));
            assertEquals("chunk key must be at most 1024 bytes, got 1025", longKey.getMessage());
            assertThrows(IllegalArgumentException.class, () -> new NewChunk(new byte[0], HEADER, new byte[1]));
            assertInstanceOf(IllegalArgumentException.class,
                    assertThrows(RuntimeException.class, () -> store.deleteSession(id("s"), java.util.Arrays.asList(key("a"), null))));
        }
    }

    @Test
    void shouldSurviveConcurrentClearBlockCacheWhileReading() throws Exception {
        try (WarmStore store = open()) {
            List<NewChunk> chunks = new ArrayList<>();
            for (int i = 0; i < 20; i++) {
                chunks.add(chunk("r" + i));
            }
            store.putChunks(chunks);
            store.flush();
            AtomicBoolean done = new AtomicBoolean();
            ConcurrentLinkedQueue<Throwable> failures = new ConcurrentLinkedQueue<>();
            Thread reader = Thread.ofPlatform().start(() -> {
                try {
                    while (!done.get()) {
                        for (NewChunk c : chunks) {
                            if (store.getChunk(c.key(), HEADER).isEmpty()) {
                                failures.add(new AssertionError("chunk missing during reopen"));
                            }
                        }
                    }
                } catch (Throwable t) {
                    failures.add(t);
                }
            });
            for (int i = 0; i < 5; i++) {
                store.clearBlockCache();
                TimeUnit.MILLISECONDS.sleep(20);
            }
            done.set(true);
            reader.join();
            assertEquals(List.of(), List.copyOf(failures));
        }
    }
}
