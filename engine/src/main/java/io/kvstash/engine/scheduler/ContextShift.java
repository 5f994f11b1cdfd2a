package io.kvstash.engine.scheduler;

import io.kvstash.engine.kv.KvCache;

/**
 * What a generating sequence does when its cache reaches the context length: make room (a context
 * shift through {@link io.kvstash.engine.InferenceEngine#shift}) and go on, instead of stopping
 * with {@link StopReason#CONTEXT}. Called on the scheduling thread between steps, with the
 * sequence's cache holding {@link #shiftAt} positions; an exception ends the generation with
 * {@link StopReason#ERROR}.
 */
@FunctionalInterface
public interface ContextShift {
    /** Frees positions in {@code cache}; returns how many (0: none, the generation stops). */
    int shift(KvCache cache);

    /** The cache length at which to shift, at most {@code contextLength} (e.g. the last chunk boundary within it). */
    default int shiftAt(int contextLength) {
        return contextLength;
    }
}
