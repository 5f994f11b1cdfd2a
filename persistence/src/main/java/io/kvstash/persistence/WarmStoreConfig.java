package io.kvstash.persistence;

import java.nio.file.Path;

/**
 * How to open a {@link WarmStore}.
 *
 * @param path             the store's directory; created if missing
 * @param blockCacheBytes  capacity of the block cache shared by all column families
 * @param syncWrites       fsync the WAL before a write returns. Without it a write is in the OS's
 *                         page cache when it returns: it survives the process dying (SIGKILL, an
 *                         OOM kill) but not the machine losing power
 * @param blobFiles        keep chunk values in blob files (RocksDB's key-value separation) instead
 *                         of inside the table files. Blob values are not held in the block cache
 *                         (RocksJava has no blob-cache option): with blob files the block cache
 *                         serves index, filter and session blocks
 * @param minBlobBytes     with blob files, values at least this long go to blob files
 * @param writeBufferBytes memtable size of the chunks column family
 * @param backgroundJobs   RocksDB's flush and compaction threads
 */
public record WarmStoreConfig(Path path, long blockCacheBytes, boolean syncWrites, boolean blobFiles,
                              long minBlobBytes, long writeBufferBytes, int backgroundJobs) {
    static final long MIB = 1L << 20;
    static final long GIB = 1L << 30;

    public WarmStoreConfig {
        if (path == null) {
            throw new IllegalArgumentException("path must be given");
        }
        if (blockCacheBytes < MIB || blockCacheBytes > 1024 * GIB) {
            throw new IllegalArgumentException("blockCacheBytes must be between 1 MiB and 1 TiB, got " + blockCacheBytes);
        }
        if (minBlobBytes < 0 || minBlobBytes > 64 * MIB) {
            throw new IllegalArgumentException("minBlobBytes must be between 0 and 64 MiB, got " + minBlobBytes);
        }
        if (writeBufferBytes < MIB || writeBufferBytes > 4 * GIB) {
            throw new IllegalArgumentException("writeBufferBytes must be between 1 MiB and 4 GiB, got " + writeBufferBytes);
        }
        if (backgroundJobs < 1 || backgroundJobs > 64) {
            throw new IllegalArgumentException("backgroundJobs must be between 1 and 64, got " + backgroundJobs);
        }
    }

    /**
     * 64 MiB block cache, no fsync per write, blob files on (values from 4 KiB), 64 MiB memtable, 2
     * background jobs. Blob files because chunks are written once each and read back only when a
     * session resumes: they cost less CPU and far fewer SSD bytes to write, the same disk space,
     * somewhat more CPU to read (persistence/README.md has the numbers).
     */
    public static WarmStoreConfig defaults(Path path) {
        return new WarmStoreConfig(path, 64 * MIB, false, true, 4096, 64 * MIB, 2);
    }

    public WarmStoreConfig withPath(Path path) {
        return new WarmStoreConfig(path, blockCacheBytes, syncWrites, blobFiles, minBlobBytes, writeBufferBytes, backgroundJobs);
    }

    public WarmStoreConfig withBlockCacheBytes(long blockCacheBytes) {
        return new WarmStoreConfig(path, blockCacheBytes, syncWrites, blobFiles, minBlobBytes, writeBufferBytes, backgroundJobs);
    }

    public WarmStoreConfig withSyncWrites(boolean syncWrites) {
        return new WarmStoreConfig(path, blockCacheBytes, syncWrites, blobFiles, minBlobBytes, writeBufferBytes, backgroundJobs);
    }

    public WarmStoreConfig withBlobFiles(boolean blobFiles) {
        return new WarmStoreConfig(path, blockCacheBytes, syncWrites, blobFiles, minBlobBytes, writeBufferBytes, backgroundJobs);
    }

    public WarmStoreConfig withMinBlobBytes(long minBlobBytes) {
        return new WarmStoreConfig(path, blockCacheBytes, syncWrites, blobFiles, minBlobBytes, writeBufferBytes, backgroundJobs);
    }

    public WarmStoreConfig withWriteBufferBytes(long writeBufferBytes) {
        return new WarmStoreConfig(path, blockCacheBytes, syncWrites, blobFiles, minBlobBytes, writeBufferBytes, backgroundJobs);
    }

    public WarmStoreConfig withBackgroundJobs(int backgroundJobs) {
        return new WarmStoreConfig(path, blockCacheBytes, syncWrites, blobFiles, minBlobBytes, writeBufferBytes, backgroundJobs);
    }
}
