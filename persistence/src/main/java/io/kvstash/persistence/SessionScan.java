package io.kvstash.persistence;

import java.util.Iterator;
import java.util.NoSuchElementException;
import java.util.concurrent.atomic.AtomicBoolean;
import org.rocksdb.RocksIterator;

/**
 * Session ids in key order from {@link WarmStore#scanSessions}. Holds a RocksDB iterator: close
 * it. If the store closes (or reopens to clear its cache) first, the store closes the iterator and
 * later steps fail instead of touching freed memory.
 */
public final class SessionScan implements Iterator<byte[]>, AutoCloseable {
    private final WarmStore store;
    private final RocksIterator iterator;
    private final AtomicBoolean closed = new AtomicBoolean();
    private volatile String closedBecause;

    SessionScan(WarmStore store, RocksIterator iterator) {
        this.store = store;
        this.iterator = iterator;
    }

    @Override
    public synchronized boolean hasNext() {
        return store.inScan(this, "scanSessions.hasNext", db -> {
            if (iterator.isValid()) {
                return true;
            }
            iterator.status();
            return false;
        });
    }

    @Override
    public synchronized byte[] next() {
        return store.inScan(this, "scanSessions.next", db -> {
            if (!iterator.isValid()) {
                iterator.status();
                throw new NoSuchElementException("no more sessions");
            }
            byte[] key = iterator.key();
            iterator.next();
            return key;
        });
    }

    @Override
    public synchronized void close() {
        if (!closed.get()) {
            store.closeScan(this);
        }
    }

    void requireOpen() {
        if (closed.get()) {
            throw new IllegalStateException("session scan is closed: " + closedBecause);
        }
    }

    /**
     * Frees the native iterator once. Callers hold the store's lock: the read lock together with
     * this scan's monitor, or the write lock, so no step of this scan is running.
     */
    void closeIterator(String reason) {
        if (closed.compareAndSet(false, true)) {
            closedBecause = reason;
            iterator.close();
        }
    }
}
