package io.kvstash.engine.tokenizer;

import java.util.Arrays;
import java.util.List;

/** Ranges of a text in which control-token text must stay plain text; sorted, disjoint, answered by binary search. */
final class LiteralRanges {
    private final int[] starts;
    private final int[] ends;

    private LiteralRanges(int[] starts, int[] ends) {
        this.starts = starts;
        this.ends = ends;
    }

    /**
     * @throws IllegalArgumentException if a range reaches past {@code textLength} or the ranges are not sorted and disjoint
     */
    static LiteralRanges of(List<TextRange> ranges, int textLength) {
        int[] starts = new int[ranges.size()];
        int[] ends = new int[ranges.size()];
        int n = 0;
        int previousEnd = 0;
        for (TextRange r : ranges) {
            if (r.start() < previousEnd || r.end() > textLength) {
                throw new IllegalArgumentException("literal ranges must be sorted, disjoint and inside the text of length "
                        + textLength + "; got " + ranges);
            }
            previousEnd = r.end();
            if (r.length() > 0) { // an empty range protects nothing, and overlaps() relies on there being none
                starts[n] = r.start();
                ends[n] = r.end();
                n++;
            }
        }
        return new LiteralRanges(Arrays.copyOf(starts, n), Arrays.copyOf(ends, n));
    }

    boolean isEmpty() {
        return starts.length == 0;
    }

    /** Whether {@code [start, end)} shares a character with one of the ranges. */
    boolean overlaps(int start, int end) {
        // The last range starting before `end` is the only candidate: the ones before it end before it starts.
        int lo = 0;
        int hi = starts.length - 1;
        int candidate = -1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (starts[mid] < end) {
                candidate = mid;
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        return candidate >= 0 && ends[candidate] > start;
    }
}
