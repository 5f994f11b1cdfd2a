package io.kvstash.engine.scheduler;

/** Why a scheduled generation ended. */
public enum StopReason {
    /** The model produced an end-of-generation token (not included in the result). */
    STOP,
    /** The requested number of tokens was produced. */
    LENGTH,
    /** The sequence reached the engine's context length. */
    CONTEXT,
    /** {@link Generation#cancel()} or {@link BatchScheduler#close()}. */
    CANCELLED,
    /** The forward step or the listener threw; see {@link GenerationResult#error()}. */
    ERROR
}
