package io.kvstash.engine.scheduler;

import java.util.concurrent.RejectedExecutionException;

/** {@link BatchScheduler#submit} found its queue of waiting sequences full; retry later. */
public final class QueueFullException extends RejectedExecutionException {
    public QueueFullException(String message) {
        super(message);
    }
}
