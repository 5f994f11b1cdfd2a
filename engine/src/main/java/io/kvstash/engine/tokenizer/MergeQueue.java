package io.kvstash.engine.tokenizer;

import java.util.Arrays;

/**
 * A binary max-heap of candidate merges in primitive arrays: highest score first, and among
 * equal scores the leftmost, which is llama.cpp's {@code llm_bigram_spm::comparator}. The BPE
 * tokenizer queues its merge ranks negated, which gives {@code llm_bigram_bpe::comparator}
 * (lowest rank first, then leftmost). Two candidates that are both still valid never share a
 * left symbol, so this order is total over the entries that matter and any correct heap pops
 * them in llama.cpp's order.
 */
final class MergeQueue {
    private float[] scores;
    private int[] lefts;
    private int[] rights;
    private int[] lengths;
    private int size;
    int left;
    int right;
    int length;

    MergeQueue(int capacity) {
        scores = new float[capacity];
        lefts = new int[capacity];
        rights = new int[capacity];
        lengths = new int[capacity];
    }

    void clear() {
        size = 0;
    }

    boolean isEmpty() {
        return size == 0;
    }

    void push(float score, int left, int right, int length) {
        if (size == scores.length) {
            int capacity = size * 2;
            scores = Arrays.copyOf(scores, capacity);
            lefts = Arrays.copyOf(lefts, capacity);
            rights = Arrays.copyOf(rights, capacity);
            lengths = Arrays.copyOf(lengths, capacity);
        }
        int i = size++;
        while (i > 0) {
            int parent = (i - 1) >>> 1;
            if (!before(score, left, scores[parent], lefts[parent])) {
                break;
            }
            move(parent, i);
            i = parent;
        }
        set(i, score, left, right, length);
    }

    /** Removes the first entry and leaves it in {@link #left}, {@link #right}, {@link #length}. */
    void pop() {
        left = lefts[0];
        right = rights[0];
        length = lengths[0];
        int last = --size;
        if (last == 0) {
            return;
        }
        float score = scores[last];
        int lastLeft = lefts[last];
        int lastRight = rights[last];
        int lastLength = lengths[last];
        int i = 0;
        while (true) {
            int child = 2 * i + 1;
            if (child >= last) {
                break;
            }
            if (child + 1 < last && before(scores[child + 1], lefts[child + 1], scores[child], lefts[child])) {
                child++;
            }
            if (!before(scores[child], lefts[child], score, lastLeft)) {
                break;
            }
            move(child, i);
            i = child;
        }
        set(i, score, lastLeft, lastRight, lastLength);
    }

    private static boolean before(float score, int left, float otherScore, int otherLeft) {
        return score > otherScore || score == otherScore && left < otherLeft;
    }

    private void move(int from, int to) {
        set(to, scores[from], lefts[from], rights[from], lengths[from]);
    }

    private void set(int i, float score, int left, int right, int length) {
        scores[i] = score;
        lefts[i] = left;
        rights[i] = right;
        lengths[i] = length;
    }
}
