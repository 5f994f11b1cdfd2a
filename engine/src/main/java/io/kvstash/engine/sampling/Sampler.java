package io.kvstash.engine.sampling;

import io.kvstash.engine.kernel.VectorMath;
import java.util.Arrays;
import java.util.Objects;
import java.util.SplittableRandom;
import java.util.random.RandomGenerator;

/**
 * Chooses the next token id from one row of logits, with llama.cpp's filters in llama.cpp's order:
 * repetition penalty, top-k, top-p, min-p, temperature, softmax, then a seeded draw.
 *
 * <p>Top-p and min-p look at the probabilities <em>before</em> temperature is applied (temperature
 * comes last, as in llama.cpp), and top-p renormalises over what top-k left. At temperature 0 the
 * choice is the argmax of the penalised logits, the lowest id winning a tie, and the random source is
 * never touched.
 *
 * <p><b>The caller's logits are modified in place</b>: the repetition penalty is written into the
 * array. Logits must be finite or {@code -Infinity} (a masked token); NaN or {@code +Infinity}, or every
 * token masked, is rejected rather than turned into an arbitrary token.
 *
 * <p>A sampler holds scratch arrays sized to the vocabulary and a random state, so that a call does
 * not allocate: it is <b>not thread-safe</b> and is meant to be owned by one generation at a time. The
 * same params (seed included) and the same sequence of logits give the same sequence of tokens; each
 * non-greedy call takes exactly one number from the random source.
 */
public final class Sampler {

    private static final int[] NO_TOKENS = new int[0];

    private final SamplingParams params;
    private final int vocabularySize;
    private final RandomGenerator random;

    // Scratch, allocated only for the features the params switch on (a greedy sampler needs none).
    /** Candidates packed as {@link #rankKey}: the top-k heap, or the tokens to sort for top-p. */
    private final long[] rankKeys;
    /** Ids still in the running after the filters; sorted best first whenever a filter needed order. */
    private final int[] candidates;
    /** Temperature-scaled, unnormalised probability of each candidate, kept between sum and walk. */
    private final float[] weights;
    /** Per token, the call that last penalised it: a repeat in the window is penalised only once. */
    private final int[] penaltyMarks;
    private int penaltyCall;

    public Sampler(SamplingParams params, int vocabularySize) {
        this.params = Objects.requireNonNull(params, "params");
        if (vocabularySize <= 0) {
            throw new IllegalArgumentException("vocabularySize must be > 0, was " + vocabularySize);
        }
        this.vocabularySize = vocabularySize;
        // SplittableRandom's algorithm is specified, so a seed means the same thing on every JDK.
        this.random = new SplittableRandom(params.seed());
        boolean drawing = !params.isGreedy();
        this.rankKeys = drawing && (topKCuts() || params.topP() < 1f) ? new long[vocabularySize] : null;
        this.candidates = drawing ? new int[vocabularySize] : null;
        this.weights = drawing ? new float[vocabularySize] : null;
        boolean penalising = params.repetitionPenalty() != 1f && params.repetitionWindow() > 0;
        this.penaltyMarks = penalising ? new int[vocabularySize] : null;
    }

    public SamplingParams params() {
        return params;
    }

    public int vocabularySize() {
        return vocabularySize;
    }

    /** Chooses a token with no history to penalise. {@code logits} may be modified in place. */
    public int sample(float[] logits) {
        return sample(logits, NO_TOKENS, 0);
    }

    /**
     * Chooses a token.
     *
     * @param logits       one score per token id, exactly {@link #vocabularySize()} long; <b>modified in
     *                     place</b> by the repetition penalty
     * @param recentTokens the tokens generated so far (prompt included if the caller wants it penalised),
     *                     oldest first; only the last {@code min(repetitionWindow, recentCount)} are read
     * @param recentCount  how many entries of {@code recentTokens} are valid
     * @return the chosen token id
     */
    public int sample(float[] logits, int[] recentTokens, int recentCount) {
        Objects.requireNonNull(logits, "logits");
        Objects.requireNonNull(recentTokens, "recentTokens");
        if (logits.length != vocabularySize) {
            throw new IllegalArgumentException(
                    "logits has " + logits.length + " entries but the vocabulary has " + vocabularySize);
        }
        if (recentCount < 0 || recentCount > recentTokens.length) {
            throw new IllegalArgumentException(
                    "recentCount must be in [0, " + recentTokens.length + "], was " + recentCount);
        }
        int windowStart = recentCount - Math.min(params.repetitionWindow(), recentCount);
        for (int i = windowStart; i < recentCount; i++) {
            int token = recentTokens[i];
            if (token < 0 || token >= vocabularySize) {
                throw new IllegalArgumentException("recentTokens[" + i + "] = " + token
                        + " is outside the vocabulary [0, " + vocabularySize + ")");
            }
        }

        penaliseRepeats(logits, recentTokens, windowStart, recentCount);
        if (params.isGreedy()) {
            return argmax(logits);
        }
        if (topKCuts()) {
            int count = selectTopK(logits, params.topK());
            float max = logits[candidates[0]];
            double mass = 0;
            for (int i = 0; i < count; i++) {
                mass += Math.exp(logits[candidates[i]] - max);
            }
            return draw(logits, truncateSorted(logits, count, mass), max);
        }
        float max = checkedMax(logits);
        return draw(logits, gatherWithoutTopK(logits, max), max);
    }

    /** Top-k at or above the vocabulary size keeps everything, so it is handled as off. */
    private boolean topKCuts() {
        return params.topK() > 0 && params.topK() < vocabularySize;
    }

    /** llama.cpp semantics: a positive logit is divided by the penalty, a negative one multiplied. */
    private void penaliseRepeats(float[] logits, int[] recentTokens, int from, int to) {
        if (penaltyMarks == null || from == to) {
            return;
        }
        // A fresh mark per call instead of clearing a vocabulary-sized array; clear only on wrap-around.
        if (++penaltyCall == 0) {
            Arrays.fill(penaltyMarks, 0);
            penaltyCall = 1;
        }
        float penalty = params.repetitionPenalty();
        for (int i = from; i < to; i++) {
            int token = recentTokens[i];
            if (penaltyMarks[token] == penaltyCall) {
                continue;
            }
            penaltyMarks[token] = penaltyCall;
            float logit = logits[token];
            logits[token] = logit <= 0f ? logit * penalty : logit / penalty;
        }
    }

    private static int argmax(float[] logits) {
        int fast = VectorMath.argmax(logits, logits.length);
        if (fast >= 0) {
            return fast;
        }
        // NaN, +∞ or all −∞: the scalar scan names the problem.
        int best = -1;
        float bestLogit = Float.NEGATIVE_INFINITY;
        for (int id = 0; id < logits.length; id++) {
            float logit = logits[id];
            if (!(logit < Float.POSITIVE_INFINITY)) {
                throw unusableLogit(id, logit);
            }
            if (logit > bestLogit) { // strict: the lowest id keeps a tie
                best = id;
                bestLogit = logit;
            }
        }
        if (best < 0) {
            throw everyTokenMasked();
        }
        return best;
    }

    private static float checkedMax(float[] logits) {
        float max = Float.NEGATIVE_INFINITY;
        for (int id = 0; id < logits.length; id++) {
            float logit = logits[id];
            if (!(logit < Float.POSITIVE_INFINITY)) {
                throw unusableLogit(id, logit);
            }
            max = Math.max(max, logit);
        }
        if (max == Float.NEGATIVE_INFINITY) {
            throw everyTokenMasked();
        }
        return max;
    }

    /**
     * Puts the {@code k} best tokens into {@link #candidates}, best first, using a bounded max-heap
     * of rank keys (worst kept token at the root): O(V log k), and most tokens cost one comparison
     * against the root, instead of sorting the whole vocabulary.
     */
    private int selectTopK(float[] logits, int k) {
        long[] heap = rankKeys;
        int size = 0;
        // The worst kept logit once the heap is full: most tokens fall below it and are rejected by one
        // float comparison, without building a key.
        float floor = Float.NEGATIVE_INFINITY;
        for (int id = 0; id < vocabularySize; id++) {
            float logit = logits[id];
            if (!(logit < Float.POSITIVE_INFINITY)) {
                throw unusableLogit(id, logit);
            }
            if (size == k && logit < floor) {
                continue;
            }
            long key = rankKey(logit, id);
            if (size < k) {
                siftUp(heap, size++, key);
            } else if (key < heap[0]) {
                siftDown(heap, k, key);
            } else {
                continue;
            }
            if (size == k) {
                floor = logits[(int) heap[0]];
            }
        }
        Arrays.sort(heap, 0, k);
        for (int i = 0; i < k; i++) {
            candidates[i] = (int) heap[i];
        }
        if (logits[candidates[0]] == Float.NEGATIVE_INFINITY) {
            throw everyTokenMasked();
        }
        return k;
    }

    /**
     * Without top-k, gathers the tokens that can survive top-p and min-p. Only top-p needs order, and
     * it never reaches a token whose probability is below {@code (1 - topP) / V}: all such tokens
     * together hold less than {@code 1 - topP}. So only the tokens above that bound (and above the
     * min-p bound, which top-p does not affect) are sorted, usually a small part of the vocabulary.
     */
    private int gatherWithoutTopK(float[] logits, float max) {
        double cut = Double.NEGATIVE_INFINITY;
        if (params.minP() > 0f) {
            cut = max + Math.log(params.minP());
        }
        if (params.topP() >= 1f) {
            int count = 0;
            for (int id = 0; id < vocabularySize; id++) {
                if (logits[id] >= cut) {
                    candidates[count++] = id;
                }
            }
            return count;
        }
        double mass = 0;
        for (int id = 0; id < vocabularySize; id++) {
            mass += Math.exp(logits[id] - max);
        }
        // mass is the softmax denominator relative to max, so this is log((1 - topP) / V) in logit space.
        cut = Math.max(cut, max + Math.log(mass * (1.0 - params.topP()) / vocabularySize));
        int count = 0;
        for (int id = 0; id < vocabularySize; id++) {
            float logit = logits[id];
            if (logit >= cut) {
                rankKeys[count++] = rankKey(logit, id);
            }
        }
        Arrays.sort(rankKeys, 0, count);
        for (int i = 0; i < count; i++) {
            candidates[i] = (int) rankKeys[i];
        }
        return truncateSorted(logits, count, mass);
    }

    /**
     * Applies top-p then min-p to candidates sorted best first. {@code mass} is the sum of
     * {@code exp(logit - max)} over the set top-p normalises against (what top-k left, or the whole
     * vocabulary), which may be larger than the candidates passed in. Both filters keep a prefix and
     * always keep the best token.
     */
    private int truncateSorted(float[] logits, int count, double mass) {
        float max = logits[candidates[0]];
        int keep = count;
        if (params.topP() < 1f) {
            // Compared unnormalised: cumulative / mass >= topP without a division per token.
            double target = params.topP() * mass;
            double cumulative = 0;
            for (int i = 0; i < count; i++) {
                cumulative += Math.exp(logits[candidates[i]] - max);
                if (cumulative >= target) {
                    keep = i + 1; // llama.cpp keeps the token that crosses the threshold
                    break;
                }
            }
            // Running off the end only happens through rounding in the sum; then everything gathered stays.
        }
        if (params.minP() > 0f) {
            double cut = max + Math.log(params.minP());
            int kept = 1;
            while (kept < keep && logits[candidates[kept]] >= cut) {
                kept++;
            }
            keep = kept;
        }
        return keep;
    }

    /** Temperature, softmax and one draw over the first {@code count} candidates; {@code max} is among them. */
    private int draw(float[] logits, int count, float max) {
        double inverseTemperature = 1.0 / params.temperature();
        double total = 0;
        for (int i = 0; i < count; i++) {
            float weight = (float) Math.exp((logits[candidates[i]] - max) * inverseTemperature);
            weights[i] = weight;
            total += weight;
        }
        double target = random.nextDouble() * total;
        double cumulative = 0;
        for (int i = 0; i < count; i++) {
            cumulative += weights[i];
            if (target < cumulative) {
                return candidates[i];
            }
        }
        // Rounding can put target at the very end of the total; it then belongs to the last token with weight.
        for (int i = count - 1; i >= 0; i--) {
            if (weights[i] > 0f) {
                return candidates[i];
            }
        }
        throw new IllegalStateException("no candidate has weight; the best token always should");
    }

    /**
     * One primitive long that orders by logit descending, then id ascending, so selection and sorting
     * need neither boxing nor a comparator. The high half is the float's bits mapped to an int with the
     * same order, then inverted; the low half is the id.
     */
    private static long rankKey(float logit, int id) {
        int bits = Float.floatToRawIntBits(logit + 0f); // + 0f turns -0.0 into 0.0 so the two tie
        int ascending = bits ^ ((bits >> 31) & 0x7fffffff);
        return ((long) ~ascending << 32) | (id & 0xffffffffL);
    }

    private static void siftUp(long[] heap, int index, long key) {
        while (index > 0) {
            int parent = (index - 1) >>> 1;
            if (heap[parent] >= key) {
                break;
            }
            heap[index] = heap[parent];
            index = parent;
        }
        heap[index] = key;
    }

    /** Replaces the root (the worst kept token) with {@code key} and restores the max-heap. */
    private static void siftDown(long[] heap, int size, long key) {
        int index = 0;
        int child;
        while ((child = 2 * index + 1) < size) {
            if (child + 1 < size && heap[child + 1] > heap[child]) {
                child++;
            }
            if (key >= heap[child]) {
                break;
            }
            heap[index] = heap[child];
            index = child;
        }
        heap[index] = key;
    }

    private static IllegalArgumentException unusableLogit(int id, float logit) {
        return new IllegalArgumentException(
                "logits[" + id + "] is " + logit + "; logits must be finite or -Infinity");
    }

    private static IllegalArgumentException everyTokenMasked() {
        return new IllegalArgumentException("every logit is -Infinity; there is no token to choose");
    }
}
