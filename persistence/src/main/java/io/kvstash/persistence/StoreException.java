package io.kvstash.persistence;

import java.nio.file.Path;
import org.rocksdb.RocksDBException;

/** A warm-store operation failed; names the store's directory and the operation. */
public class StoreException extends RuntimeException {
    private final Path path;
    private final String operation;

    public StoreException(Path path, String operation, String message, Throwable cause) {
        super("warm store " + path + ": " + operation + ": " + message, cause);
        this.path = path;
        this.operation = operation;
    }

    static StoreException of(Path path, String operation, RocksDBException e) {
        String status = e.getStatus() == null ? "" : e.getStatus().getCodeString() + ": ";
        String hint = String.valueOf(e.getMessage()).contains("/LOCK") ? " (another process, or another store in this one, has the directory open)" : "";
        return new StoreException(path, operation, status + e.getMessage() + hint, e);
    }

    /** The store's directory. */
    public Path path() {
        return path;
    }

    /** What was being done, e.g. {@code "writeSession"}. */
    public String operation() {
        return operation;
    }
}
