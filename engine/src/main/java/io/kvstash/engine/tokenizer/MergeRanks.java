package io.kvstash.engine.tokenizer;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * The merges of a byte-level BPE vocabulary ({@code tokenizer.ggml.merges}, {@code "left right"}
 * per entry, rank = index) as a hash table over pairs of symbol ids, so that merging compares
 * integers instead of building strings.
 *
 * <p>A symbol id is the vocabulary id of a text that is in the vocabulary, and an id from
 * {@code vocabularySize} up for a merge side or result that is not (a vocabulary need not contain
 * them; llama.cpp compares texts and only looks the final symbols up). So an id below
 * {@code vocabularySize} is always the token for that symbol's text, and any other id means
 * "not a token". Like llama.cpp's {@code bpe_ranks.emplace}, the first occurrence of a pair keeps
 * its rank; an entry without a space after its first character is ignored.
 */
final class MergeRanks {
    /** Ranks are queued as negated float scores ({@link MergeQueue}), exact below 2^24. */
    static final int MAX_MERGES = 1 << 24;
    private static final long EMPTY = -1L;

    private final int[] charSymbols;
    private final long[] keys;
    // rank << 32 | merged symbol id
    private final long[] values;
    private final int mask;
    private final int size;

    /**
     * @param idsByText the vocabulary's text-to-id map
     * @param alphabetSize symbols are looked up for single characters below this (the byte-level alphabet)
     */
    MergeRanks(String[] merges, Map<String, Integer> idsByText, int vocabularySize, int alphabetSize) {
        if (merges.length >= MAX_MERGES) {
            throw new IllegalArgumentException(merges.length + " merges; at most " + (MAX_MERGES - 1) + " are supported");
        }
        Map<String, Integer> extra = new HashMap<>();
        int capacity = Integer.highestOneBit(Math.max(16, merges.length * 2 - 1)) << 1;
        keys = new long[capacity];
        values = new long[capacity];
        mask = capacity - 1;
        Arrays.fill(keys, EMPTY);
        int count = 0;
        for (int rank = 0; rank < merges.length; rank++) {
            String merge = merges[rank];
            int space = merge.indexOf(' ', 1);
            if (space < 0) {
                continue;
            }
            String left = merge.substring(0, space);
            String right = merge.substring(space + 1);
            int l = symbol(left, idsByText, extra, vocabularySize);
            int r = symbol(right, idsByText, extra, vocabularySize);
            int merged = symbol(left + right, idsByText, extra, vocabularySize);
            if (put(key(l, r), (long) rank << 32 | merged)) {
                count++;
            }
        }
        size = count;
        charSymbols = new int[alphabetSize];
        for (char c = 0; c < alphabetSize; c++) {
            String text = String.valueOf(c);
            Integer id = idsByText.get(text);
            if (id == null) {
                id = extra.get(text);
            }
            charSymbols[c] = id == null ? -1 : id;
        }
    }

    private static int symbol(String text, Map<String, Integer> idsByText, Map<String, Integer> extra, int vocabularySize) {
        Integer id = idsByText.get(text);
        return id != null ? id : extra.computeIfAbsent(text, t -> vocabularySize + extra.size());
    }

    private static long key(int left, int right) {
        return (long) left << 32 | right & 0xFFFFFFFFL;
    }

    private static int slot(long key, int mask) {
        long h = key * 0x9E3779B97F4A7C15L;
        return (int) (h ^ h >>> 32) & mask;
    }

    private boolean put(long key, long value) {
        for (int i = slot(key, mask); ; i = i + 1 & mask) {
            if (keys[i] == EMPTY) {
                keys[i] = key;
                values[i] = value;
                return true;
            }
            if (keys[i] == key) {
                return false;
            }
        }
    }

    /** The symbol of a single character of the alphabet, or -1 if no merge or token has that text. */
    int symbolOf(char c) {
        return c < charSymbols.length ? charSymbols[c] : -1;
    }

    /** {@code rank << 32 | merged symbol} for the pair, or -1 if the two do not merge. */
    long find(int left, int right) {
        if (left < 0 || right < 0) {
            return -1;
        }
        long key = key(left, right);
        for (int i = slot(key, mask); ; i = i + 1 & mask) {
            long k = keys[i];
            if (k == key) {
                return values[i];
            }
            if (k == EMPTY) {
                return -1;
            }
        }
    }

    int size() {
        return size;
    }
}
