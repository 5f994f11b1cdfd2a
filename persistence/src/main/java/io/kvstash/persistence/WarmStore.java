package io.kvstash.persistence;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.rocksdb.Checkpoint;
import org.rocksdb.ColumnFamilyHandle;
import org.rocksdb.FlushOptions;
import org.rocksdb.LogFile;
import org.rocksdb.RocksDB;
import org.rocksdb.RocksDBException;
import org.rocksdb.RocksIterator;
import org.rocksdb.WriteBatch;

/**
 * The warm tier's storage: chunks, session records and metadata in one RocksDB, in three column
 * families ({@code chunks}, {@code sessions}, {@code meta}). It knows bytes and keys only; what a
 * session value means is the caller's business, and a chunk value is the caller's payload framed
 * by {@link ChunkCodec}, checked on every read.
 *
 * <p>Thread-safe. Every operation holds a read lock while it touches native objects; {@link #close}
 * and {@link #clearBlockCache} take the write lock, so they wait for operations in flight, and an
 * operation that starts after close fails with {@link StoreClosedException} instead of reaching a
 * freed native object. A WAL is always on; a write returns once it is in the WAL.
 *
 * <p>Chunks may be shared by several sessions (prefix reuse); reference counting is the caller's.
 */
public final class WarmStore implements AutoCloseable {
    static {
        RocksDB.loadLibrary();
    }

    private static final System.Logger LOG = System.getLogger(WarmStore.class.getName());
    /** One write batch holds at most this many bytes of keys and values. */
    public static final long MAX_BATCH_BYTES = 1L << 30;
    public static final int MAX_PAGE_SIZE = 10_000;
    private static final String RESERVED_META_PREFIX = "kvstash.";

    private final WarmStoreConfig config;
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    /** Null once closed. Replaced only under the write lock. */
    private OpenDatabase open;
    private final Set<SessionScan> scans = ConcurrentHashMap.newKeySet();
    private final LongAdder rejectedChunkReads = new LongAdder();

    private WarmStore(WarmStoreConfig config, OpenDatabase open) {
        this.config = config;
        this.open = open;
    }

    /**
     * Opens (creating if needed) the store in {@code config.path()}. On failure, everything
     * already made is closed again before the exception leaves.
     *
     * @throws StoreException if RocksDB cannot open the directory, or it holds another schema
     */
    public static WarmStore open(WarmStoreConfig config) {
        Objects.requireNonNull(config, "config");
        try {
            return new WarmStore(config, OpenDatabase.open(config));
        } catch (RocksDBException e) {
            throw StoreException.of(config.path(), "open", e);
        }
    }

    public WarmStoreConfig config() {
        return config;
    }

    public Path path() {
        return config.path();
    }

    // ---- chunks ----

    /**
     * The payload of the chunk under {@code key} if it is stored, intact and has the
     * {@code expected} header. A value that fails any check counts as missing: it is logged and
     * counted in {@link #rejectedChunkReads()}.
     */
    public Optional<byte[]> getChunk(byte[] key, ChunkHeader expected) {
        Keys.require(key, "chunk key");
        Objects.requireNonNull(expected, "expected chunk header");
        byte[] value = call("getChunk", db -> db.db.get(db.chunks, db.readOptions, key));
        return value == null ? Optional.empty() : verified(key, value, expected);
    }

    /**
     * Batched {@link #getChunk} (one RocksDB MultiGet), for prefetching a session's chunks: element
     * {@code i} of the result is for {@code keys.get(i)}. All chunks are expected to have the same
     * header, as the full chunks of one session do.
     */
    public List<Optional<byte[]>> getChunks(List<byte[]> keys, ChunkHeader expected) {
        Objects.requireNonNull(keys, "chunk keys");
        Objects.requireNonNull(expected, "expected chunk header");
        for (byte[] key : keys) {
            Keys.require(key, "chunk key");
        }
        List<byte[]> values = call("getChunks", db -> keys.isEmpty() ? List.of()
                : db.db.multiGetAsList(db.readOptions, Collections.nCopies(keys.size(), db.chunks), keys));
        List<Optional<byte[]>> out = new ArrayList<>(values.size());
        for (int i = 0; i < values.size(); i++) {
            byte[] value = values.get(i);
            out.add(value == null ? Optional.empty() : verified(keys.get(i), value, expected));
        }
        return out;
    }

    /**
     * {@link #getChunk} into a buffer of the caller's, for reads on a hot path (parked chunks read per
     * decode step): the value under {@code key} is read into {@code value} and checked as
     * {@code getChunk} checks it, nothing is allocated for its bytes. Returns the payload's length (it
     * starts at {@link ChunkCodec#PREFIX_BYTES} in {@code value}), or -1 when the chunk is absent,
     * rejected, or longer than {@code value}.
     */
    public int readChunk(byte[] key, ChunkHeader expected, byte[] value) {
        Keys.require(key, "chunk key");
        Objects.requireNonNull(expected, "expected chunk header");
        Objects.requireNonNull(value, "value buffer");
        int size = call("readChunk", db -> db.db.get(db.chunks, db.readOptions, key, value));
        if (size == RocksDB.NOT_FOUND) {
            return -1;
        }
        ChunkCodec.Rejected rejected = size > value.length
                ? new ChunkCodec.Rejected(ChunkDefect.TRAILING_BYTES, size + " bytes stored, the buffer holds " + value.length)
                : ChunkCodec.verify(value, size, expected);
        if (rejected != null) {
            rejectedChunkReads.increment();
            LOG.log(System.Logger.Level.WARNING, "warm store {0}: chunk {1} rejected, treated as missing: {2} ({3})",
                    path(), Keys.hex(key), rejected.defect(), rejected.detail());
            return -1;
        }
        return size - ChunkCodec.PREFIX_BYTES;
    }

    /**
     * Whether a value is stored under {@code key}, without reading it out or checking it: a chunk
     * that a later read rejects still exists here. A caller that saw a rejection should write the
     * chunk again rather than trust this.
     */
    public boolean chunkExists(byte[] key) {
        Keys.require(key, "chunk key");
        return call("chunkExists", db -> {
            if (!db.db.keyMayExist(db.chunks, db.readOptions, key, null)) {
                return false; // the bloom filter and memtable say no: certain
            }
            return db.db.get(db.chunks, db.readOptions, key, new byte[0]) != RocksDB.NOT_FOUND;
        });
    }

    /** Stores chunks that no session record refers to yet (write-back on eviction); atomic. */
    public void putChunks(Collection<NewChunk> chunks) {
        List<byte[][]> encoded = encode(chunks, 0);
        call("putChunks", db -> {
            try (WriteBatch batch = new WriteBatch()) {
                for (byte[][] kv : encoded) {
                    batch.put(db.chunks, kv[0], kv[1]);
                }
                db.db.write(db.writeOptions, batch);
            }
            return null;
        });
    }

    /** Deletes chunks, all or none. Keys that are not stored are ignored. */
    public void deleteChunks(Collection<byte[]> keys) {
        List<byte[]> checked = requireKeys(keys, "chunk key");
        call("deleteChunks", db -> {
            try (WriteBatch batch = new WriteBatch()) {
                for (byte[] key : checked) {
                    batch.delete(db.chunks, key);
                }
                db.db.write(db.writeOptions, batch);
            }
            return null;
        });
    }

    // ---- sessions ----

    /**
     * Writes a session record together with the chunks it newly refers to, in one atomic write
     * batch: after a crash either all of them are there or none is, so a stored session never
     * points at chunks that are missing (as long as the chunks it refers to from earlier writes
     * were not deleted since).
     */
    public void writeSession(byte[] sessionId, byte[] sessionValue, Collection<NewChunk> newChunks) {
        Keys.require(sessionId, "session id");
        Objects.requireNonNull(sessionValue, "session value");
        List<byte[][]> encoded = encode(newChunks, sessionId.length + (long) sessionValue.length);
        call("writeSession", db -> {
            try (WriteBatch batch = new WriteBatch()) {
                for (byte[][] kv : encoded) {
                    batch.put(db.chunks, kv[0], kv[1]);
                }
                batch.put(db.sessions, sessionId, sessionValue);
                db.db.write(db.writeOptions, batch);
            }
            return null;
        });
    }

    public Optional<byte[]> getSession(byte[] sessionId) {
        Keys.require(sessionId, "session id");
        return Optional.ofNullable(call("getSession", db -> db.db.get(db.sessions, db.readOptions, sessionId)));
    }

    /**
     * Deletes a session record and the given chunks (those only it referred to) in one atomic
     * write batch.
     */
    public void deleteSession(byte[] sessionId, Collection<byte[]> chunkKeys) {
        Keys.require(sessionId, "session id");
        List<byte[]> checked = requireKeys(chunkKeys, "chunk key");
        call("deleteSession", db -> {
            try (WriteBatch batch = new WriteBatch()) {
                batch.delete(db.sessions, sessionId);
                for (byte[] key : checked) {
                    batch.delete(db.chunks, key);
                }
                db.db.write(db.writeOptions, batch);
            }
            return null;
        });
    }

    /**
     * Up to {@code limit} session ids in unsigned bytewise order, starting after
     * {@code startAfter} ({@code null} for the first page).
     */
    public SessionPage listSessions(byte[] startAfter, int limit) {
        if (startAfter != null) {
            Keys.require(startAfter, "startAfter");
        }
        if (limit < 1 || limit > MAX_PAGE_SIZE) {
            throw new IllegalArgumentException("limit must be between 1 and " + MAX_PAGE_SIZE + ", got " + limit);
        }
        return call("listSessions", db -> {
            try (RocksIterator it = db.db.newIterator(db.sessions, db.scanReadOptions)) {
                position(it, startAfter);
                List<byte[]> ids = new ArrayList<>(Math.min(limit, 256));
                while (it.isValid() && ids.size() < limit) {
                    ids.add(it.key());
                    it.next();
                }
                it.status();
                return new SessionPage(ids, it.isValid());
            }
        });
    }

    /**
     * An iterator over every session id after {@code startAfter} ({@code null}: from the first),
     * reading a consistent snapshot. It pins RocksDB resources until closed: use it in
     * try-with-resources. The store closes scans still open when it closes or reopens; using such a
     * scan fails. One thread at a time, like any iterator.
     */
    public SessionScan scanSessions(byte[] startAfter) {
        if (startAfter != null) {
            Keys.require(startAfter, "startAfter");
        }
        return call("scanSessions", db -> {
            RocksIterator it = db.db.newIterator(db.sessions, db.scanReadOptions);
            try {
                position(it, startAfter);
                it.status();
            } catch (RocksDBException | RuntimeException e) {
                it.close();
                throw e;
            }
            SessionScan scan = new SessionScan(this, it);
            scans.add(scan);
            return scan;
        });
    }

    private static void position(RocksIterator it, byte[] startAfter) {
        if (startAfter == null) {
            it.seekToFirst();
            return;
        }
        it.seek(startAfter);
        if (it.isValid() && Arrays.equals(it.key(), startAfter)) {
            it.next();
        }
    }

    /** Scans that are still open. */
    int openScans() {
        return scans.size();
    }

    /** Runs a scan step under the read lock, after checking the store and the scan are open. */
    <T> T inScan(SessionScan scan, String operation, RocksCall<T> step) {
        return call(operation, db -> {
            scan.requireOpen();
            return step.run(db);
        });
    }

    void closeScan(SessionScan scan) {
        lock.readLock().lock();
        try {
            scan.closeIterator("the scan was closed");
            scans.remove(scan);
        } finally {
            lock.readLock().unlock();
        }
    }

    // ---- meta ----

    /** A metadata value, e.g. a model fingerprint the tier above recorded. */
    public Optional<byte[]> getMeta(String name) {
        byte[] key = metaKey(name);
        return Optional.ofNullable(call("getMeta", db -> db.db.get(db.meta, db.readOptions, key)));
    }

    /** Stores a metadata value. Names starting with {@code "kvstash."} belong to the store. */
    public void putMeta(String name, byte[] value) {
        byte[] key = metaKey(name);
        Objects.requireNonNull(value, "meta value");
        if (name.startsWith(RESERVED_META_PREFIX)) {
            throw new IllegalArgumentException("meta name '" + name + "' is reserved for the store (prefix " + RESERVED_META_PREFIX + ")");
        }
        call("putMeta", db -> {
            db.db.put(db.meta, db.writeOptions, key, value);
            return null;
        });
    }

    private static byte[] metaKey(String name) {
        if (name == null || name.isBlank()) {
            throw new IllegalArgumentException("meta name must not be blank");
        }
        return Keys.require(name.getBytes(StandardCharsets.UTF_8), "meta name");
    }

    // ---- maintenance ----

    /** Disk bytes as RocksDB accounts them, for enforcing a disk budget. */
    public DiskUsage diskUsage() {
        return call("diskUsage", db -> {
            long tables = 0;
            long blobs = 0;
            for (ColumnFamilyHandle family : db.families) {
                tables += db.db.getLongProperty(family, "rocksdb.total-sst-files-size");
                blobs += db.db.getLongProperty(family, "rocksdb.total-blob-file-size");
            }
            long wal = 0;
            for (LogFile log : db.db.getSortedWalFiles()) {
                wal += log.sizeFileBytes();
            }
            return new DiskUsage(tables, blobs, wal);
        });
    }

    /**
     * Writes a consistent copy of the store to {@code target}, which must not exist yet (its parent
     * is created). Table files are hard-linked where the file system allows, so it is cheap; the
     * copy opens as a store of its own.
     */
    public void checkpoint(Path target) {
        Objects.requireNonNull(target, "checkpoint target");
        Path absolute = target.toAbsolutePath();
        if (Files.exists(absolute)) {
            throw new IllegalArgumentException("checkpoint target already exists: " + absolute);
        }
        call("checkpoint", db -> {
            try {
                if (absolute.getParent() != null) {
                    Files.createDirectories(absolute.getParent());
                }
            } catch (IOException e) {
                throw new StoreException(path(), "checkpoint", "cannot create " + absolute.getParent() + ": " + e, e);
            }
            try (Checkpoint checkpoint = Checkpoint.create(db.db)) {
                checkpoint.createCheckpoint(absolute.toString());
            }
            return null;
        });
    }

    /** Writes every memtable to table files and waits; the WAL they covered can then go. */
    public void flush() {
        call("flush", db -> {
            try (FlushOptions options = new FlushOptions().setWaitForFlush(true)) {
                db.db.flush(options, db.families);
            }
            return null;
        });
    }

    /**
     * Compacts every column family completely and waits: reclaims the space of deleted chunks
     * (and, with blob files, garbage-collects blob files). Heavy; for maintenance windows and tests.
     */
    public void compact() {
        call("compact", db -> {
            for (ColumnFamilyHandle family : db.families) {
                db.db.compactRange(family);
            }
            return null;
        });
    }

    /** Bytes held by the block cache now. */
    public long blockCacheUsage() {
        return call("blockCacheUsage", db -> db.blockCache.getUsage());
    }

    /**
     * Empties the block cache, for measuring reads that must go to the files. RocksJava offers no
     * way to erase a live cache nor to swap a running database's cache, so this closes the
     * database and opens it again with a new cache (the WAL replays: nothing is lost). It waits
     * for operations in flight and closes open scans. The operating system's page cache is not
     * touched: a "cold" read measured after this may still be served from RAM by the OS.
     *
     * @throws StoreException if the reopen fails; the store is then closed
     */
    public void clearBlockCache() {
        lock.writeLock().lock();
        try {
            OpenDatabase old = requireOpen("clearBlockCache");
            closeScans("the store's block cache was cleared (the database reopened)");
            open = null;
            try {
                old.close();
            } catch (RocksDBException | RuntimeException e) {
                throw new StoreException(path(), "clearBlockCache", "close before reopen failed: " + e, e);
            }
            try {
                open = OpenDatabase.open(config);
            } catch (RocksDBException e) {
                throw StoreException.of(path(), "clearBlockCache", e);
            }
        } finally {
            lock.writeLock().unlock();
        }
    }

    /** Chunk reads that found a value and rejected it (corrupt, or not the expected chunk). */
    public long rejectedChunkReads() {
        return rejectedChunkReads.sum();
    }

    /** Whether the store has been closed (or failed to reopen). */
    public boolean isClosed() {
        lock.readLock().lock();
        try {
            return open == null;
        } finally {
            lock.readLock().unlock();
        }
    }

    /**
     * Waits for operations in flight, closes open scans and then every native resource. Idempotent;
     * later operations fail with {@link StoreClosedException}.
     */
    @Override
    public void close() {
        lock.writeLock().lock();
        try {
            if (open == null) {
                return;
            }
            closeScans("the store was closed");
            OpenDatabase closing = open;
            open = null;
            try {
                closing.close();
            } catch (RocksDBException | RuntimeException e) {
                throw new StoreException(path(), "close", e.toString(), e);
            }
        } finally {
            lock.writeLock().unlock();
        }
    }

    // ---- internals ----

    @FunctionalInterface
    interface RocksCall<T> {
        T run(OpenDatabase db) throws RocksDBException;
    }

    private <T> T call(String operation, RocksCall<T> call) {
        lock.readLock().lock();
        try {
            return call.run(requireOpen(operation));
        } catch (RocksDBException e) {
            throw StoreException.of(path(), operation, e);
        } finally {
            lock.readLock().unlock();
        }
    }

    private OpenDatabase requireOpen(String operation) {
        OpenDatabase db = open;
        if (db == null) {
            throw new StoreClosedException(path(), operation);
        }
        return db;
    }

    /** Under the write lock: no scan is in a step. */
    private void closeScans(String reason) {
        for (SessionScan scan : scans) {
            scan.closeIterator(reason);
        }
        scans.clear();
    }

    private Optional<byte[]> verified(byte[] key, byte[] value, ChunkHeader expected) {
        return switch (ChunkCodec.decode(value, expected)) {
            case ChunkCodec.Valid valid -> Optional.of(valid.payload());
            case ChunkCodec.Rejected rejected -> {
                rejectedChunkReads.increment();
                LOG.log(System.Logger.Level.WARNING, "warm store {0}: chunk {1} rejected, treated as missing: {2} ({3})",
                        path(), Keys.hex(key), rejected.defect(), rejected.detail());
                yield Optional.empty();
            }
        };
    }

    /** Checks and encodes every chunk before anything is written, so a bad one writes nothing. */
    private static List<byte[][]> encode(Collection<NewChunk> chunks, long alreadyInBatch) {
        Objects.requireNonNull(chunks, "chunks");
        List<byte[][]> encoded = new ArrayList<>(chunks.size());
        long bytes = alreadyInBatch;
        for (NewChunk chunk : chunks) {
            Objects.requireNonNull(chunk, "chunks must not contain null");
            bytes += chunk.key().length + (long) chunk.payload().length + ChunkCodec.PREFIX_BYTES;
            if (bytes > MAX_BATCH_BYTES) {
                throw new IllegalArgumentException("write batch over " + MAX_BATCH_BYTES + " bytes: split it");
            }
            encoded.add(new byte[][] {chunk.key(), ChunkCodec.encode(chunk.header(), chunk.payload())});
        }
        return encoded;
    }

    private static List<byte[]> requireKeys(Collection<byte[]> keys, String what) {
        Objects.requireNonNull(keys, what + "s");
        List<byte[]> checked = new ArrayList<>(keys.size());
        for (byte[] key : keys) {
            checked.add(Keys.require(key, what));
        }
        return checked;
    }
}
