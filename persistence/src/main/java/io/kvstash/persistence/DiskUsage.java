package io.kvstash.persistence;

/**
 * Bytes the store occupies on disk, as RocksDB accounts them, for a tier above that enforces a
 * disk budget. Table and blob files include obsolete files not yet deleted; memtables are not on
 * disk (their data is in the WAL).
 *
 * @param tableFileBytes {@code rocksdb.total-sst-files-size}, summed over column families
 * @param blobFileBytes  {@code rocksdb.total-blob-file-size}, summed over column families
 * @param walBytes       the write-ahead log files
 */
public record DiskUsage(long tableFileBytes, long blobFileBytes, long walBytes) {
    public long totalBytes() {
        return tableFileBytes + blobFileBytes + walBytes;
    }
}
