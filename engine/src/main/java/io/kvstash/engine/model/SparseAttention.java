package io.kvstash.engine.model;

import io.kvstash.engine.kv.KvChunk;
import io.kvstash.engine.kv.KvFormat;

/**
 * Sparse decode (Quest-style): a decoding token attends, in every layer from {@code denseLayers}
 * on and per KV head, over the first chunk (the attention sink), the open tail chunk, and the full
 * chunks that {@code scoring} ranks highest from their key summaries, as many as fit in
 * {@code budgetTokens} positions in all. Tokens of a prefill (several tokens of one sequence in a
 * step) and sequences shorter than {@code minContext} attend densely.
 *
 * @param enabled       sparse decode on or off
 * @param budgetTokens  positions of the sink and the chosen chunks (rounded down to whole chunks; the
 *                      tail, under a chunk, is attended on top); a budget that covers the context is dense
 *                      attention exactly
 * @param minContext    positions a sequence must hold (the decoding token included) before decode goes sparse
 * @param denseLayers   leading layers that always attend densely
 * @param scoring       how chunks are ranked (see {@link Scoring})
 * @param summaryTokens positions per sub-block of a chunk's key summary (per-channel min, max, mean and
 *                      variance per sub-block); must divide the chunk size (a size of a chunk or more, or 0,
 *                      is the whole chunk); unused by {@link Scoring#SKETCH}, whose summary is a key sketch
 */
public record SparseAttention(boolean enabled, int budgetTokens, int minContext, int denseLayers, Scoring scoring, int summaryTokens) {
    public static final Scoring DEFAULT_SCORING = Scoring.SKETCH;
    public static final int DEFAULT_SUMMARY_TOKENS = 16;
    public static final SparseAttention OFF = new SparseAttention(false, 2048, 4096, 2);

    /** How the full chunks between sink and tail are ranked for one KV head. */
    public enum Scoring {
        /**
         * Quest: the upper bound {@code Σ_c max(q_c·max_c, q_c·min_c)} on any key's score, the largest
         * over the chunk's sub-blocks and over the query heads of the group.
         */
        BOUND,
        /**
         * An upper bound on the chunk's softmax mass: {@code Σ_b n_b·exp(scale·bound_b)} over the
         * sub-blocks; per query head as a share of the head's estimated total (the sink and tail
         * scored exactly), the shares summed over the heads of the group.
         */
        MASS_BOUND,
        /**
         * Landmarks: the chunk's mass estimated from the sub-blocks' mean keys,
         * {@code Σ_b n_b·exp(scale·q·mean_b)}; shares summed over the group as {@link #MASS_BOUND}.
         */
        MEAN,
        /**
         * The chunk's mass estimated from each sub-block's per-channel key mean and variance as if the
         * keys were Gaussian with independent channels, {@code Σ_b n_b·exp(scale·q·mean_b + ½·scale²·Σ_c q_c²·var_bc)}
         * (each term capped by the bound); shares summed over the group as {@link #MASS_BOUND}.
         */
        MOMENTS,
        /**
         * The chunk's mass computed from its key sketch ({@link KvChunk#SKETCH}: every key quantized to
         * 2 bits, or 4 for chunks of an odd multiple of 32 positions, per channel and group of 32
         * positions as KIVI2 keys): {@code Σ_t exp(scale·q·k̂_t)}, every sketched key scored; shares
         * summed over the group as {@link #MASS_BOUND}. Costs a scoring pass over 2-bit keys per
         * chunk, but ranks chunks nearly as {@link #EXACT} does (see README, "Sparse decode").
         */
        SKETCH,
        /**
         * The chunk's exact softmax mass (every key scored), shares summed over the group: a fidelity
         * reference for the {@code sparse-fidelity} command, the ceiling of chunk selection. It reads
         * every chunk, so it saves nothing; the service refuses it.
         */
        EXACT
    }

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
        if (scoring == null) {
            throw new IllegalArgumentException("sparse scoring must be set");
        }
        if (summaryTokens < 0) {
            throw new IllegalArgumentException("sparse summary tokens must not be negative, got " + summaryTokens);
        }
    }

    /** These settings with the default scoring and summary granularity. */
    public SparseAttention(boolean enabled, int budgetTokens, int minContext, int denseLayers) {
        this(enabled, budgetTokens, minContext, denseLayers, DEFAULT_SCORING, DEFAULT_SUMMARY_TOKENS);
    }

    /** These settings, switched on. */
    public SparseAttention on() {
        return new SparseAttention(true, budgetTokens, minContext, denseLayers, scoring, summaryTokens);
    }

    public SparseAttention withBudgetTokens(int budgetTokens) {
        return new SparseAttention(enabled, budgetTokens, minContext, denseLayers, scoring, summaryTokens);
    }

    public SparseAttention withMinContext(int minContext) {
        return new SparseAttention(enabled, budgetTokens, minContext, denseLayers, scoring, summaryTokens);
    }

    /**
     * Positions per summary sub-block for chunks of {@code chunkTokens} (at most the chunk), or
     * {@link KvChunk#SKETCH} for sketch scoring; rejects a size that does not divide them, and chunks
     * a sketch cannot cover.
     */
    public int summaryTokens(int chunkTokens) {
        if (scoring == Scoring.SKETCH) {
            if (chunkTokens % KvFormat.GROUP != 0) {
                throw new IllegalArgumentException("sketch scoring needs chunks of a multiple of " + KvFormat.GROUP
                        + " positions, got " + chunkTokens + "; choose chunks of such a size or another scoring");
            }
            return KvChunk.SKETCH;
        }
        int b = summaryTokens == 0 ? chunkTokens : Math.min(summaryTokens, chunkTokens);
        if (chunkTokens % b != 0) {
            throw new IllegalArgumentException("sparse summary sub-blocks of " + summaryTokens + " positions do not divide chunks of "
                    + chunkTokens + " positions");
        }
        return b;
    }

    /** Estimates per chunk {@link ChunkSelection} makes for chunks of {@code chunkTokens}: one per summary sub-block, one for a sketch. */
    int summaryBlocks(int chunkTokens) {
        int spec = summaryTokens(chunkTokens);
        return spec == KvChunk.SKETCH ? 1 : chunkTokens / spec;
    }

    /** What a summary layout ({@link KvChunk#summaryTokens}) is, in words. */
    public static String describeSummary(int summaryTokens) {
        return summaryTokens == KvChunk.SKETCH ? "a key sketch" : "key statistics of " + summaryTokens + "-position sub-blocks";
    }

    /** Whether a decoding token at {@code positions} positions (itself included) in {@code layer} attends sparsely. */
    boolean engages(int layer, int positions) {
        return enabled && layer >= denseLayers && positions >= minContext;
    }
}
