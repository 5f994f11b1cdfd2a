package io.kvstash.engine.tokenizer;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.IntStream;

/**
 * Cuts the special tokens written out in a text away from the plain text around them, before the
 * plain text goes to the tokenizer proper (llama.cpp's {@code tokenizer_st_partition}).
 *
 * <p>Candidates are the control, unknown and user-defined tokens; control and unknown ones only
 * when special-token parsing is on. They are tried longest text first, each one splitting every
 * plain-text fragment left by the longer ones at each of its leftmost non-overlapping occurrences.
 * llama.cpp's LSTRIP/RSTRIP attributes are not modelled: GGUF files do not carry them (llama.cpp
 * only sets them by model name, for a few non-Llama models).
 */
final class SpecialTokenSplitter {

    /** A piece of the text: either a special token, or plain text {@code [start, end)} still to tokenize. */
    record Fragment(int token, int start, int end) {
        static final int PLAIN_TEXT = -1;

        boolean isPlainText() {
            return token == PLAIN_TEXT;
        }
    }

    private final int[] ids;
    private final String[] texts;
    private final boolean[] matchedOnlyWhenParsingSpecial;

    SpecialTokenSplitter(String[] vocabularyTexts, TokenType[] types) {
        // Ties in length keep id order: llama.cpp's std::sort leaves their order unspecified, and it
        // only matters for two equally long special tokens that overlap in the same text.
        this.ids = IntStream.range(0, types.length)
                .filter(id -> types[id] == TokenType.CONTROL || types[id] == TokenType.UNKNOWN || types[id] == TokenType.USER_DEFINED)
                .filter(id -> !vocabularyTexts[id].isEmpty())
                .boxed()
                .sorted(Comparator.comparingInt((Integer id) -> -vocabularyTexts[id].length()).thenComparingInt(id -> id))
                .mapToInt(Integer::intValue)
                .toArray();
        this.texts = new String[ids.length];
        this.matchedOnlyWhenParsingSpecial = new boolean[ids.length];
        for (int i = 0; i < ids.length; i++) {
            texts[i] = vocabularyTexts[ids[i]];
            matchedOnlyWhenParsingSpecial[i] = types[ids[i]] != TokenType.USER_DEFINED;
        }
    }

    /** Whether {@code text} holds the text of a token that only special-token parsing matches (control, unknown). */
    boolean containsSpecialOnlyText(String text) {
        for (int i = 0; i < ids.length; i++) {
            if (matchedOnlyWhenParsingSpecial[i] && text.contains(texts[i])) {
                return true;
            }
        }
        return false;
    }

    /** {@code text} as fragments in order; a non-empty text without special tokens is one plain fragment. */
    List<Fragment> split(String text, boolean parseSpecial) {
        return split(text, parseSpecial, null);
    }

    /**
     * Like {@link #split(String, boolean) split(text, true)}, except that control and unknown tokens
     * are not matched where they would overlap one of the {@code literal} ranges: there their text
     * stays plain text, as when special-token parsing is off.
     */
    List<Fragment> split(String text, LiteralRanges literal) {
        return split(text, true, literal.isEmpty() ? null : literal);
    }

    private List<Fragment> split(String text, boolean parseSpecial, LiteralRanges literal) {
        List<Fragment> fragments = new ArrayList<>();
        if (text.isEmpty()) {
            return fragments;
        }
        fragments.add(new Fragment(Fragment.PLAIN_TEXT, 0, text.length()));
        for (int i = 0; i < ids.length; i++) {
            if (matchedOnlyWhenParsingSpecial[i] && !parseSpecial) {
                continue;
            }
            int first = text.indexOf(texts[i]);
            if (first >= 0) {
                fragments = splitAt(text, fragments, ids[i], texts[i], first, matchedOnlyWhenParsingSpecial[i] ? literal : null);
            }
        }
        return fragments;
    }

    /** Splits the plain fragments at the occurrences of {@code token} that do not overlap {@code literal} (null: none). */
    private static List<Fragment> splitAt(String text, List<Fragment> fragments, int id, String token, int firstMatch,
                                          LiteralRanges literal) {
        List<Fragment> result = new ArrayList<>(fragments.size() + 2);
        int match = firstMatch; // the next occurrence at or after the search position, or -1 for none left
        for (Fragment fragment : fragments) {
            if (!fragment.isPlainText() || match < 0) {
                result.add(fragment);
                continue;
            }
            int from = fragment.start();
            while (true) {
                if (match >= 0 && match < from) {
                    match = text.indexOf(token, from);
                }
                while (literal != null && match >= 0 && literal.overlaps(match, match + token.length())) {
                    match = text.indexOf(token, match + 1);
                }
                if (match < 0 || match + token.length() > fragment.end()) {
                    break;
                }
                if (match > from) {
                    result.add(new Fragment(Fragment.PLAIN_TEXT, from, match));
                }
                result.add(new Fragment(id, match, match + token.length()));
                from = match + token.length();
            }
            if (from < fragment.end()) {
                result.add(new Fragment(Fragment.PLAIN_TEXT, from, fragment.end()));
            }
        }
        return result;
    }
}
