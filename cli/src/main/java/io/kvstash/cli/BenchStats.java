package io.kvstash.cli;

import java.util.Arrays;

/** What the bench commands report of their runs. */
final class BenchStats {
    private BenchStats() {
    }

    /** The median of {@code a} (the mean of the middle two for an even count); {@code a} is left as it is. */
    static double median(double[] a) {
        double[] s = a.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }

    /** {@code v} rounded to hundredths, for JSON output. */
    static double hundredths(double v) {
        return Math.round(v * 100) / 100.0;
    }
}
