package io.kvstash.engine.model;

import io.kvstash.engine.kernel.VectorMath;
import io.kvstash.engine.kv.KvCache;
import io.kvstash.engine.kv.KvChunk;

/**
 * Which chunks a decoding query attends over under a token budget (Quest): chunk 0 (the attention
 * sink) and the chunk holding the query's own position (the tail) always, and of the full chunks
 * between them those that rank highest by {@link SparseAttention.Scoring} (by default the chunk's
 * attention mass over its key sketch; or estimated from its sub-blocks' key means and variances; or Quest's upper bound
 * {@code Σ_c max(q_c·max_c, q_c·min_c)} on any key's score, the maximum taken over the query heads
 * that share the KV head). Ties go to the earlier chunk.
 */
final class ChunkSelection {
    private ChunkSelection() {
    }

    /**
     * Full chunks between sink and tail that a budget of {@code budgetTokens} positions leaves room
     * for: the budget covers the sink and the chosen chunks; the tail (fewer than a chunk of
     * positions, the newest) comes on top.
     */
    static int room(int budgetTokens, int chunkTokens) {
        return Math.max(0, (budgetTokens - chunkTokens) / chunkTokens);
    }

    /** Floats of the {@code est} scratch {@link #select} needs for {@code chunks} chunks of {@code summaryBlocks} sub-blocks. */
    static int estimateFloats(int chunks, int summaryBlocks) {
        return chunks * (summaryBlocks + 1);
    }

    /**
     * Marks in {@code pick[0 .. tail]} (tail = {@code (positions − 1) / chunkTokens}) the chunks to
     * attend over, ranked by {@code sp.scoring()}. The queries are {@code groupSize} head vectors of
     * {@code headDim} floats from {@code q[groupQ]}; {@code scale} is attention's score factor.
     * {@code est} (at least {@link #estimateFloats}) receives each middle chunk's rank score in
     * {@code est[0 .. tail)}; {@code scores} (a chunk of positions) and {@code kvScratch} are scratch
     * for the scorings that read keys. Chunks must carry summaries of {@code sp.summaryTokens(chunkTokens)}
     * positions per sub-block (for the summary scorings). Returns false, leaving {@code pick}
     * undefined, when the budget covers every chunk (attend densely instead).
     */
    static boolean select(KvCache cache, int layer, int kvHead, float[] q, int groupQ, int groupSize, int headDim, int positions,
                          SparseAttention sp, float scale, float[] est, boolean[] pick, float[] scores, float[] kvScratch) {
        int chunkTokens = cache.geometry().chunkTokens();
        int tail = (positions - 1) / chunkTokens;
        int middle = tail - 1;
        int take = room(sp.budgetTokens(), chunkTokens);
        if (middle <= 0 || take >= middle) {
            return false;
        }
        if (sp.scoring() == SparseAttention.Scoring.BOUND) {
            for (int ch = 1; ch < tail; ch++) {
                KvChunk chunk = cache.chunk(ch);
                float b = Float.NEGATIVE_INFINITY;
                for (int g = 0; g < groupSize; g++) {
                    b = Math.max(b, chunk.keyScoreBound(layer, kvHead, q, groupQ + g * headDim));
                }
                est[ch] = b;
            }
        } else {
            estimateShares(cache, layer, kvHead, q, groupQ, groupSize, headDim, positions, sp.scoring(), scale, est, scores, kvScratch);
        }
        for (int ch = 1; ch < tail; ch++) {
            pick[ch] = false;
        }
        pick[0] = true;
        pick[tail] = true;
        for (int j = 0; j < take; j++) {
            int best = -1;
            for (int ch = 1; ch < tail; ch++) {
                if (!pick[ch] && (best < 0 || est[ch] > est[best])) {
                    best = ch;
                }
            }
            pick[best] = true;
        }
        return true;
    }

    /**
     * {@code est[ch]} for the middle chunks: the sum over the group's query heads of the chunk's
     * estimated share of that head's softmax mass, where a head's total is the exact mass of the sink
     * and the tail plus the estimates of the middle chunks (a single head skips the total: the shares
     * rank as the estimates do). Per-sub-block log estimates go to {@code est[(tail + 1) + ch·blocks + b]}.
     * One exp per sub-block; logs only for the sink and tail.
     */
    private static void estimateShares(KvCache cache, int layer, int kvHead, float[] q, int groupQ, int groupSize, int headDim,
                                       int positions, SparseAttention.Scoring scoring, float scale, float[] est, float[] scores,
                                       float[] kvScratch) {
        int chunkTokens = cache.geometry().chunkTokens();
        int tail = (positions - 1) / chunkTokens;
        int stride = tail + 1;
        boolean whole = scoring == SparseAttention.Scoring.EXACT || scoring == SparseAttention.Scoring.SKETCH;
        int blocks = whole ? 1 : cache.chunk(1).summaryBlocks();
        // Each sub-block's estimate is n_b·exp(v): log n_b is common to all, so it joins only the exact sink and tail.
        float logBlock = whole ? 0f : (float) Math.log(chunkTokens / blocks);
        for (int ch = 1; ch < tail; ch++) {
            est[ch] = 0f;
        }
        for (int g = 0; g < groupSize; g++) {
            int qOff = groupQ + g * headDim;
            float max = Float.NEGATIVE_INFINITY;
            for (int ch = 1; ch < tail; ch++) {
                KvChunk chunk = cache.chunk(ch);
                for (int b = 0; b < blocks; b++) {
                    float v = switch (scoring) {
                        case MOMENTS -> chunk.keyLogMeanExp(layer, kvHead, b, q, qOff, scale);
                        case MASS_BOUND -> scale * chunk.keyScoreBound(layer, kvHead, b, q, qOff);
                        case MEAN -> scale * chunk.keyMeanScore(layer, kvHead, b, q, qOff);
                        case SKETCH -> {
                            chunk.sketchScores(layer, kvHead, q, qOff, scale, scores, 0, kvScratch);
                            yield logSumExp(scores, chunkTokens);
                        }
                        case EXACT -> logMass(chunk, layer, kvHead, q, qOff, chunkTokens, scale, scores, kvScratch);
                        case BOUND -> throw new IllegalStateException("BOUND ranks by the bound itself");
                    };
                    est[stride + (ch - 1) * blocks + b] = v;
                    max = Math.max(max, v);
                }
            }
            float sinkTail = Float.NEGATIVE_INFINITY;
            if (groupSize > 1) {
                sinkTail = logAdd(logMass(cache.chunk(0), layer, kvHead, q, qOff, chunkTokens, scale, scores, kvScratch),
                        logMass(cache.chunk(tail), layer, kvHead, q, qOff, positions - tail * chunkTokens, scale, scores, kvScratch))
                        - logBlock;
                max = Math.max(max, sinkTail);
            }
            double total = Math.exp(sinkTail - max);
            for (int ch = 1; ch < tail; ch++) {
                float m = 0f;
                for (int b = 0, at = stride + (ch - 1) * blocks; b < blocks; b++) {
                    m += (float) Math.exp(est[at + b] - max);
                }
                est[stride + (ch - 1) * blocks] = m; // the chunk's mass relative to exp(max); its first block's slot is free now
                total += m;
            }
            for (int ch = 1; ch < tail; ch++) {
                est[ch] += (float) (est[stride + (ch - 1) * blocks] / total);
            }
        }
    }

    /** {@code log Σ_t exp(scale · q·key[t])} over the first {@code count} positions of {@code chunk}. */
    private static float logMass(KvChunk chunk, int layer, int kvHead, float[] q, int qOff, int count, float scale, float[] scores,
                                 float[] kvScratch) {
        chunk.keyScores(layer, kvHead, q, qOff, count, scale, scores, 0, kvScratch);
        return logSumExp(scores, count);
    }

    /** {@code log Σ_t exp(scores[t])} over {@code scores[0 .. count)}, which it overwrites (one vector exp per key). */
    private static float logSumExp(float[] scores, int count) {
        float max = Float.NEGATIVE_INFINITY;
        for (int t = 0; t < count; t++) {
            max = Math.max(max, scores[t]);
        }
        return max + (float) Math.log(VectorMath.expShift(scores, 0, count, max));
    }

    /** {@code log(exp(a) + exp(b))} without overflow. */
    private static float logAdd(float a, float b) {
        float hi = Math.max(a, b);
        if (hi == Float.NEGATIVE_INFINITY) {
            return hi;
        }
        return hi + (float) Math.log1p(Math.exp(Math.min(a, b) - hi));
    }

    /**
     * Attention of one query head ({@code q[qOff..+headDim)}) over the positions of the chunks marked
     * in {@code pick[0 .. (positions − 1) / chunkTokens]}, in position order, softmax over those
     * positions only: {@code out[outOff..+headDim)} receives the weighted values. {@code scores}
     * must hold the chosen positions. With every chunk marked this is dense attention, operation for
     * operation.
     */
    static void attendChosen(KvCache cache, int layer, int kvHead, float[] q, int qOff, int positions, float scale, boolean[] pick,
                             float[] scores, float[] out, int outOff, float[] scratch) {
        int chunkTokens = cache.geometry().chunkTokens();
        int tail = (positions - 1) / chunkTokens;
        int n = 0;
        for (int ch = 0; ch <= tail; ch++) {
            if (pick[ch]) {
                int count = Math.min(chunkTokens, positions - ch * chunkTokens);
                cache.chunk(ch).keyScores(layer, kvHead, q, qOff, count, scale, scores, n, scratch);
                n += count;
            }
        }
        VectorMath.softmax(scores, 0, n);
        java.util.Arrays.fill(out, outOff, outOff + cache.geometry().headDim(), 0f);
        n = 0;
        for (int ch = 0; ch <= tail; ch++) {
            if (pick[ch]) {
                int count = Math.min(chunkTokens, positions - ch * chunkTokens);
                cache.chunk(ch).accumulateValues(layer, kvHead, scores, n, count, out, outOff, scratch);
                n += count;
            }
        }
    }
}
