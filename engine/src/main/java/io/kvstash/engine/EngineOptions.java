package io.kvstash.engine;

import io.kvstash.engine.kv.KvFormat;
import io.kvstash.engine.kv.KvGeometry;
import io.kvstash.engine.model.SparseAttention;

/**
 * How to run a model.
 *
 * @param threads        compute threads (the caller's thread counts as one)
 * @param contextLength  positions a sequence may reach; 0 = the model's trained length. Larger
 *                       values compute (rotary positions extrapolate); quality past training is the model's
 * @param maxBatch       tokens per prefill step
 * @param kvFormat       element format of KV chunks
 * @param chunkTokens    positions per KV chunk
 * @param kvCapacityBytes budget of the in-memory KV store
 * @param sparse         sparse decode over chunk summaries (off by default)
 */
public record EngineOptions(int threads, int contextLength, int maxBatch, KvFormat kvFormat, int chunkTokens, long kvCapacityBytes,
                            SparseAttention sparse) {
    /** Options with sparse decode off. */
    public EngineOptions(int threads, int contextLength, int maxBatch, KvFormat kvFormat, int chunkTokens, long kvCapacityBytes) {
        this(threads, contextLength, maxBatch, kvFormat, chunkTokens, kvCapacityBytes, SparseAttention.OFF);
    }

    public EngineOptions {
        if (sparse == null) {
            throw new IllegalArgumentException("sparse attention settings must not be null");
        }
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be at least 1, got " + threads);
        }
        if (contextLength < 0) {
            throw new IllegalArgumentException("context length must not be negative, got " + contextLength);
        }
        if (maxBatch < 1) {
            throw new IllegalArgumentException("max batch must be at least 1, got " + maxBatch);
        }
        if (chunkTokens < 1) {
            throw new IllegalArgumentException("chunk tokens must be at least 1, got " + chunkTokens);
        }
        if (sparse.enabled()) {
            sparse.summaryTokens(chunkTokens); // rejects sub-blocks that do not divide the chunks
        }
        if (kvCapacityBytes <= 0) {
            throw new IllegalArgumentException("KV capacity must be positive, got " + kvCapacityBytes);
        }
    }

    public static EngineOptions defaults() {
        return new EngineOptions(Runtime.getRuntime().availableProcessors(), 0, 64, KvFormat.F32,
                KvGeometry.DEFAULT_CHUNK_TOKENS, 1L << 30);
    }

    public EngineOptions withThreads(int threads) {
        return new EngineOptions(threads, contextLength, maxBatch, kvFormat, chunkTokens, kvCapacityBytes, sparse);
    }

    public EngineOptions withContextLength(int contextLength) {
        return new EngineOptions(threads, contextLength, maxBatch, kvFormat, chunkTokens, kvCapacityBytes, sparse);
    }

    public EngineOptions withMaxBatch(int maxBatch) {
        return new EngineOptions(threads, contextLength, maxBatch, kvFormat, chunkTokens, kvCapacityBytes, sparse);
    }

    public EngineOptions withKvFormat(KvFormat kvFormat) {
        return new EngineOptions(threads, contextLength, maxBatch, kvFormat, chunkTokens, kvCapacityBytes, sparse);
    }

    public EngineOptions withChunkTokens(int chunkTokens) {
        return new EngineOptions(threads, contextLength, maxBatch, kvFormat, chunkTokens, kvCapacityBytes, sparse);
    }

    public EngineOptions withSparse(SparseAttention sparse) {
        return new EngineOptions(threads, contextLength, maxBatch, kvFormat, chunkTokens, kvCapacityBytes, sparse);
    }
}
