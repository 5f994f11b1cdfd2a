package io.kvstash.engine.sampling;

import java.util.Arrays;

/** How often each token came out of repeated draws over the same logits, and how that compares to a distribution. */
final class DrawCounts {

    private final long[] counts;
    private final int draws;

    private DrawCounts(long[] counts, int draws) {
        this.counts = counts;
        this.draws = draws;
    }

    /** Draws {@code draws} times from a fresh copy of {@code logits} each time, since the sampler may write into it. */
    static DrawCounts of(Sampler sampler, float[] logits, int draws) {
        long[] counts = new long[logits.length];
        for (int i = 0; i < draws; i++) {
            counts[sampler.sample(logits.clone())]++;
        }
        return new DrawCounts(counts, draws);
    }

    double frequency(int token) {
        return (double) counts[token] / draws;
    }

    long count(int token) {
        return counts[token];
    }

    int distinctTokens() {
        int distinct = 0;
        for (long count : counts) {
            distinct += count > 0 ? 1 : 0;
        }
        return distinct;
    }

    /**
     * Pearson's chi-square against {@code expected} probabilities. A token drawn although its
     * expected probability is zero makes the statistic infinite, which fails any bound.
     */
    double chiSquare(double[] expected) {
        double statistic = 0;
        for (int token = 0; token < counts.length; token++) {
            double expectedCount = expected[token] * draws;
            if (expectedCount == 0) {
                statistic += counts[token] == 0 ? 0 : Double.POSITIVE_INFINITY;
            } else {
                double difference = counts[token] - expectedCount;
                statistic += difference * difference / expectedCount;
            }
        }
        return statistic;
    }

    double maxAbsoluteDifference(double[] expected) {
        double max = 0;
        for (int token = 0; token < counts.length; token++) {
            max = Math.max(max, Math.abs(frequency(token) - expected[token]));
        }
        return max;
    }

    /** The reference: softmax of {@code logits / temperature} over the tokens {@code kept}, zero elsewhere. */
    static double[] softmax(float[] logits, double temperature, boolean[] kept) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < logits.length; i++) {
            if (kept[i]) {
                max = Math.max(max, logits[i]);
            }
        }
        double[] probabilities = new double[logits.length];
        double sum = 0;
        for (int i = 0; i < logits.length; i++) {
            if (kept[i]) {
                probabilities[i] = Math.exp((logits[i] - max) / temperature);
                sum += probabilities[i];
            }
        }
        for (int i = 0; i < logits.length; i++) {
            probabilities[i] /= sum;
        }
        return probabilities;
    }

    static double[] softmax(float[] logits, double temperature) {
        boolean[] all = new boolean[logits.length];
        Arrays.fill(all, true);
        return softmax(logits, temperature, all);
    }
}
