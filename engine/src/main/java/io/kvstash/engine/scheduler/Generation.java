package io.kvstash.engine.scheduler;

import java.util.concurrent.CompletableFuture;

/** Handle of a submitted sequence: cancel it, or wait for its result. */
public final class Generation {
    private final long id;
    private final int promptTokens;
    private final CompletableFuture<GenerationResult> result = new CompletableFuture<>();
    private volatile boolean cancelRequested;

    Generation(long id, int promptTokens) {
        this.id = id;
        this.promptTokens = promptTokens;
    }

    /** Submission number, unique within its scheduler. */
    public long id() {
        return id;
    }

    public int promptTokens() {
        return promptTokens;
    }

    /**
     * Asks the scheduler to stop this sequence; it takes effect before the next forward step (the
     * sequence then ends with {@link StopReason#CANCELLED} and its KV chunks are returned). No
     * effect once it has ended.
     */
    public void cancel() {
        cancelRequested = true;
    }

    public boolean isCancelRequested() {
        return cancelRequested;
    }

    /** Completes (never exceptionally) when the sequence ends, for whatever reason. */
    public CompletableFuture<GenerationResult> result() {
        return result;
    }

    public boolean isDone() {
        return result.isDone();
    }

    void complete(GenerationResult r) {
        result.complete(r);
    }
}
