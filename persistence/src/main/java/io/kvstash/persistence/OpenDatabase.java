package io.kvstash.persistence;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.rocksdb.BlockBasedTableConfig;
import org.rocksdb.BloomFilter;
import org.rocksdb.Cache;
import org.rocksdb.ColumnFamilyDescriptor;
import org.rocksdb.ColumnFamilyHandle;
import org.rocksdb.ColumnFamilyOptions;
import org.rocksdb.CompressionType;
import org.rocksdb.DBOptions;
import org.rocksdb.LRUCache;
import org.rocksdb.ReadOptions;
import org.rocksdb.RocksDB;
import org.rocksdb.RocksDBException;
import org.rocksdb.WALRecoveryMode;
import org.rocksdb.WriteOptions;

/**
 * Every native object of one opened RocksDB, made in {@link #open} and closed in {@link #close} in
 * this order: column-family handles, the database, read/write options, column-family and database
 * options, the bloom filter, the block cache. {@link WarmStore} guards access; this class only
 * owns.
 */
final class OpenDatabase implements AutoCloseable {
    static final String CHUNKS = "chunks";
    static final String SESSIONS = "sessions";
    static final String META = "meta";
    static final int SCHEMA_VERSION = 1;
    static final byte[] SCHEMA_VERSION_KEY = "kvstash.schema-version".getBytes(StandardCharsets.UTF_8);

    final RocksDB db;
    final ColumnFamilyHandle chunks;
    final ColumnFamilyHandle sessions;
    final ColumnFamilyHandle meta;
    /** Every column family including RocksDB's "default" (unused, but it always exists). */
    final List<ColumnFamilyHandle> families;
    final WriteOptions writeOptions;
    final ReadOptions readOptions;
    /** For scans: they should not push the blocks that point reads need out of the cache. */
    final ReadOptions scanReadOptions;
    final Cache blockCache;
    private final CloseStack natives;

    private OpenDatabase(RocksDB db, List<ColumnFamilyHandle> handles, WriteOptions writeOptions,
                         ReadOptions readOptions, ReadOptions scanReadOptions, Cache blockCache, CloseStack natives) {
        this.db = db;
        this.families = List.copyOf(handles);
        this.chunks = handles.get(1);
        this.sessions = handles.get(2);
        this.meta = handles.get(3);
        this.writeOptions = writeOptions;
        this.readOptions = readOptions;
        this.scanReadOptions = scanReadOptions;
        this.blockCache = blockCache;
        this.natives = natives;
    }

    static OpenDatabase open(WarmStoreConfig config) throws RocksDBException {
        CloseStack natives = new CloseStack();
        try {
            Cache cache = natives.push(new LRUCache(config.blockCacheBytes()));
            BloomFilter bloom = natives.push(new BloomFilter(10));

            ColumnFamilyOptions chunkOptions = natives.push(columnFamily(cache, bloom, config.writeBufferBytes()));
            if (config.blobFiles()) {
                chunkOptions.setEnableBlobFiles(true)
                        .setMinBlobSize(config.minBlobBytes())
                        .setBlobFileSize(256 * WarmStoreConfig.MIB)
                        // Blob files are written once and only rewritten by GC, like the bottommost
                        // level: ZSTD. LZ4 did not shrink quantized-code-like values at all.
                        .setBlobCompressionType(CompressionType.ZSTD_COMPRESSION)
                        // Without it, space of deleted chunks in blob files is never given back.
                        .setEnableBlobGarbageCollection(true);
            }
            ColumnFamilyOptions sessionOptions = natives.push(columnFamily(cache, bloom, 16 * WarmStoreConfig.MIB));
            ColumnFamilyOptions metaOptions = natives.push(columnFamily(cache, bloom, 4 * WarmStoreConfig.MIB));

            DBOptions dbOptions = natives.push(new DBOptions())
                    .setCreateIfMissing(true)
                    .setCreateMissingColumnFamilies(true)
                    .setMaxBackgroundJobs(config.backgroundJobs())
                    // Recover every write up to the first damaged WAL record and nothing after it:
                    // a later write that survived must not be applied without an earlier lost one.
                    .setWalRecoveryMode(WALRecoveryMode.PointInTimeRecovery)
                    // The small families would otherwise pin old WAL files until they flush.
                    .setMaxTotalWalSize(256 * WarmStoreConfig.MIB)
                    .setKeepLogFileNum(5)
                    .setMaxLogFileSize(16 * WarmStoreConfig.MIB);
            WriteOptions writeOptions = natives.push(new WriteOptions()).setSync(config.syncWrites()).setDisableWAL(false);
            ReadOptions readOptions = natives.push(new ReadOptions()).setVerifyChecksums(true);
            ReadOptions scanReadOptions = natives.push(new ReadOptions()).setVerifyChecksums(true).setFillCache(false);

            List<ColumnFamilyDescriptor> descriptors = List.of(
                    new ColumnFamilyDescriptor(RocksDB.DEFAULT_COLUMN_FAMILY, metaOptions),
                    new ColumnFamilyDescriptor(CHUNKS.getBytes(StandardCharsets.UTF_8), chunkOptions),
                    new ColumnFamilyDescriptor(SESSIONS.getBytes(StandardCharsets.UTF_8), sessionOptions),
                    new ColumnFamilyDescriptor(META.getBytes(StandardCharsets.UTF_8), metaOptions));
            List<ColumnFamilyHandle> handles = new ArrayList<>();
            RocksDB db;
            try {
                db = RocksDB.open(dbOptions, config.path().toString(), descriptors, handles);
            } finally {
                // On failure RocksJava may have filled some handles; they go before the options too.
                if (handles.size() != descriptors.size()) {
                    handles.forEach(ColumnFamilyHandle::close);
                }
            }
            natives.pushCloser(db::closeE);
            for (ColumnFamilyHandle handle : handles) {
                natives.push(handle);
            }
            OpenDatabase open = new OpenDatabase(db, handles, writeOptions, readOptions, scanReadOptions, cache, natives);
            open.checkSchema(config);
            return open;
        } catch (Throwable t) {
            natives.closeAfter(t);
            throw t;
        }
    }

    private static ColumnFamilyOptions columnFamily(Cache cache, BloomFilter bloom, long writeBufferBytes) {
        BlockBasedTableConfig table = new BlockBasedTableConfig()
                .setBlockCache(cache)
                .setFilterPolicy(bloom)
                .setBlockSize(16 * 1024);
        return new ColumnFamilyOptions()
                .setTableFormatConfig(table)
                .setWriteBufferSize(writeBufferBytes)
                .setLevelCompactionDynamicLevelBytes(true)
                // LZ4 where data is rewritten soon (cheap to compress), ZSTD where it settles.
                .setCompressionType(CompressionType.LZ4_COMPRESSION)
                .setBottommostCompressionType(CompressionType.ZSTD_COMPRESSION);
    }

    private void checkSchema(WarmStoreConfig config) throws RocksDBException {
        byte[] stored = db.get(meta, readOptions, SCHEMA_VERSION_KEY);
        if (stored == null) {
            db.put(meta, writeOptions, SCHEMA_VERSION_KEY, ByteBuffer.allocate(4).putInt(SCHEMA_VERSION).array());
            return;
        }
        int version = stored.length == 4 ? ByteBuffer.wrap(stored).getInt() : -1;
        if (version != SCHEMA_VERSION) {
            throw new StoreException(config.path(), "open",
                    "schema version " + (version == -1 ? "unreadable (" + stored.length + " bytes)" : version)
                            + ", this build reads version " + SCHEMA_VERSION, null);
        }
    }

    @Override
    public void close() throws RocksDBException {
        natives.close();
    }
}
