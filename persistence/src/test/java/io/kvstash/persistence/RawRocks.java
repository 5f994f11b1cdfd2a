package io.kvstash.persistence;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.rocksdb.ColumnFamilyDescriptor;
import org.rocksdb.ColumnFamilyHandle;
import org.rocksdb.DBOptions;
import org.rocksdb.RocksDB;
import org.rocksdb.RocksDBException;

/**
 * Plain RocksDB on a closed store's directory, for tests that must plant bytes the store's API
 * would never write (a damaged chunk, a foreign schema version).
 */
final class RawRocks {
    private RawRocks() {
    }

    static void put(Path dir, String family, byte[] key, byte[] value) throws RocksDBException {
        List<String> names = List.of("default", OpenDatabase.CHUNKS, OpenDatabase.SESSIONS, OpenDatabase.META);
        List<ColumnFamilyDescriptor> descriptors = new ArrayList<>();
        for (String name : names) {
            descriptors.add(new ColumnFamilyDescriptor(name.getBytes(StandardCharsets.UTF_8)));
        }
        List<ColumnFamilyHandle> handles = new ArrayList<>();
        try (DBOptions options = new DBOptions().setCreateIfMissing(true).setCreateMissingColumnFamilies(true);
             RocksDB db = RocksDB.open(options, dir.toString(), descriptors, handles)) {
            try {
                db.put(handles.get(names.indexOf(family)), key, value);
            } finally {
                handles.forEach(ColumnFamilyHandle::close);
            }
        }
    }

    /** Opens and closes the directory: fails if someone (this process included) still holds it. */
    static void openAndClose(Path dir) throws RocksDBException {
        put(dir, "default", new byte[] {1}, new byte[] {1});
    }
}
