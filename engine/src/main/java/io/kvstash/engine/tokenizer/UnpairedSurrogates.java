package io.kvstash.engine.tokenizer;

/**
 * Java strings can hold a surrogate without its partner, UTF-8 cannot: Java's encoder writes
 * {@code '?'} for it, and llama.cpp can only ever be given those bytes, so both tokenizers see
 * the text that way.
 */
final class UnpairedSurrogates {
    private UnpairedSurrogates() {
    }

    /** {@code text} with every unpaired surrogate replaced by {@code '?'}; {@code text} itself when it has none. */
    static String replace(String text) {
        int i = 0;
        while (i < text.length() && !Character.isSurrogate(text.charAt(i))) {
            i++;
        }
        if (i == text.length()) {
            return text;
        }
        StringBuilder sb = new StringBuilder(text.length()).append(text, 0, i);
        for (; i < text.length(); i++) {
            char c = text.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < text.length() && Character.isLowSurrogate(text.charAt(i + 1))) {
                sb.append(c).append(text.charAt(++i));
            } else {
                sb.append(Character.isSurrogate(c) ? '?' : c);
            }
        }
        return sb.toString();
    }
}
