package io.kvstash.persistence;

import java.nio.file.Path;

/** The store was closed before (or while waiting to start) this operation. */
public final class StoreClosedException extends StoreException {
    public StoreClosedException(Path path, String operation) {
        super(path, operation, "store is closed", null);
    }
}
