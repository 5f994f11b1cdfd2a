package io.kvstash.engine.model;

import io.kvstash.engine.kernel.VectorMath;
import io.kvstash.engine.kv.KvCache;
import io.kvstash.engine.kv.KvChunk;

/**
 * Which chunks a decoding query attends over under a token budget (Quest): chunk 0 (the attention
 * sink) and the chunk holding the query's own position (the tail) always, and of the full chunks
 * between them those with the highest upper bound {@code Σ_c max(q_c·max_c, q_c·min_c)} on any key's
 * score, the maximum taken over the query heads that share the KV head. Ties go to the earlier chunk.
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

    /**
     * Marks in {@code pick[0 .. tail]} (tail = {@code (positions − 1) / chunkTokens}) the chunks to
     * attend over; {@code bound} receives each middle chunk's bound. The queries are {@code groupSize}
     * head vectors of {@code headDim} floats from {@code q[groupQ]}. Returns false, leaving
     * {@code pick} undefined, when the budget covers every chunk (attend densely instead).
     */
    static boolean select(KvCache cache, int layer, int kvHead, float[] q, int groupQ, int groupSize, int headDim, int positions,
                          int budgetTokens, float[] bound, boolean[] pick) {
        int chunkTokens = cache.geometry().chunkTokens();
        int tail = (positions - 1) / chunkTokens;
        int middle = tail - 1;
        int take = room(budgetTokens, chunkTokens);
        if (middle <= 0 || take >= middle) {
            return false;
        }
        for (int ch = 1; ch < tail; ch++) {
            KvChunk chunk = cache.chunk(ch);
            float b = Float.NEGATIVE_INFINITY;
            for (int g = 0; g < groupSize; g++) {
                b = Math.max(b, chunk.keyScoreBound(layer, kvHead, q, groupQ + g * headDim));
            }
            bound[ch] = b;
            pick[ch] = false;
        }
        pick[0] = true;
        pick[tail] = true;
        for (int j = 0; j < take; j++) {
            int best = -1;
            for (int ch = 1; ch < tail; ch++) {
                if (!pick[ch] && (best < 0 || bound[ch] > bound[best])) {
                    best = ch;
                }
            }
            pick[best] = true;
        }
        return true;
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
