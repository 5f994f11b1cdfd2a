package io.kvstash.engine.tokenizer;

/** The characters {@code [start, end)} of a text (UTF-16 indices, as {@link String#substring(int, int)}). */
public record TextRange(int start, int end) {
    public TextRange {
        if (start < 0 || end < start) {
            throw new IllegalArgumentException("bad text range [" + start + ", " + end + ")");
        }
    }

    public int length() {
        return end - start;
    }
}
