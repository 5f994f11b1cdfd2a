package io.kvstash.engine.model;

/**
 * Sparse decode (Quest-style): a decoding token attends, in every layer from {@code denseLayers}
 * on and per KV head, over the first chunk (the attention sink), the open tail chunk, and the full
 * chunks whose key summaries bound the query's scores highest, as many as fit in
 * {@code budgetTokens} positions in all. Tokens of a prefill (several tokens of one sequence in a
 * step) and sequences shorter than {@code minContext} attend densely.
 *
 * @param enabled      sparse decode on or off
 * @param budgetTokens positions of the sink and the chosen chunks (rounded down to whole chunks; the
 *                     tail, under a chunk, is attended on top); a budget that covers the context is dense
 *                     attention exactly
 * @param minContext   positions a sequence must hold (the decoding token included) before decode goes sparse
 * @param denseLayers  leading layers that always attend densely
 */
public record SparseAttention(boolean enabled, int budgetTokens, int minContext, int denseLayers) {
    public static final SparseAttention OFF = new SparseAttention(false, 2048, 4096, 2);

    public SparseAttention {
        if (budgetTokens < 1) {
            throw new IllegalArgumentException("sparse budget must be at least 1 token, got " + budgetTokens);
        }
        if (minContext < 0) {
            throw new IllegalArgumentException("sparse minimum context must not be negative, got " + minContext);
        }
        if (denseLayers < 0) {
            throw new IllegalArgumentException("sparse dense layers must not be negative, got " + denseLayers);
        }
    }

    /** These settings, switched on. */
    public SparseAttention on() {
        return new SparseAttention(true, budgetTokens, minContext, denseLayers);
    }

    public SparseAttention withBudgetTokens(int budgetTokens) {
        return new SparseAttention(enabled, budgetTokens, minContext, denseLayers);
    }

    /** Whether a decoding token at {@code positions} positions (itself included) in {@code layer} attends sparsely. */
    boolean engages(int layer, int positions) {
        return enabled && layer >= denseLayers && positions >= minContext;
    }
}
