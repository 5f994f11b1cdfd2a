package io.kvstash.engine.scheduler;

/**
 * Receives a scheduled generation's output. Called on the scheduler's thread, between forward
 * steps: keep it quick, since every sequence of the batch waits for it. An exception thrown here
 * ends that generation with {@link StopReason#ERROR}.
 */
public interface GenerationListener {
    /**
     * A sampled token and the text it completes (may be empty while a multi-byte character or a
     * leading space is pending).
     */
    default void onToken(int token, String text) {
    }

    /** The generation ended; called once, before its future completes. */
    default void onComplete(GenerationResult result) {
    }
}
