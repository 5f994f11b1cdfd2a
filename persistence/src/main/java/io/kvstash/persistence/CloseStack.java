package io.kvstash.persistence;

import java.util.ArrayDeque;
import java.util.Deque;
import org.rocksdb.AbstractNativeReference;
import org.rocksdb.RocksDBException;

/**
 * Native resources in the order they were made, closed in the reverse order. Whatever opens
 * several native objects pushes each one as soon as it exists, so a failure half way unwinds
 * exactly what was made.
 */
final class CloseStack implements AutoCloseable {
    @FunctionalInterface
    interface Closer {
        void close() throws RocksDBException;
    }

    private final Deque<Closer> closers = new ArrayDeque<>();

    <T extends AbstractNativeReference> T push(T resource) {
        closers.push(resource::close);
        return resource;
    }

    void pushCloser(Closer closer) {
        closers.push(closer);
    }

    /**
     * Closes everything, newest first, once. A failing close does not stop the others; the first
     * failure is thrown with the rest suppressed.
     */
    @Override
    public void close() throws RocksDBException {
        Exception first = null;
        while (!closers.isEmpty()) {
            try {
                closers.pop().close();
            } catch (RocksDBException | RuntimeException e) {
                if (first == null) {
                    first = e;
                } else {
                    first.addSuppressed(e);
                }
            }
        }
        switch (first) {
            case null -> { }
            case RocksDBException e -> throw e;
            case RuntimeException e -> throw e;
            default -> throw new AssertionError(first);
        }
    }

    /** Unwinds after {@code failure}, which keeps any close failure as suppressed. */
    void closeAfter(Throwable failure) {
        try {
            close();
        } catch (RocksDBException | RuntimeException e) {
            failure.addSuppressed(e);
        }
    }
}
