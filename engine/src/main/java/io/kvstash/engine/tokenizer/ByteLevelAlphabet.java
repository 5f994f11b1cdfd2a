package io.kvstash.engine.tokenizer;

import java.util.Arrays;

/**
 * GPT-2's reversible mapping of the 256 byte values onto printable characters, in which
 * byte-level BPE vocabularies and merges are written ({@code "Ġ"} is the space byte, {@code "Ċ"}
 * the newline): printable Latin-1 bytes stand for themselves, and the others, in byte order,
 * take the characters from U+0100 on. Every character of the alphabet is a single UTF-16 unit,
 * so an encoded word has exactly one {@code char} per byte.
 */
final class ByteLevelAlphabet {
    /** Every character of the alphabet is below this (U+0144). */
    static final int CHAR_LIMIT;
    private static final char[] CHAR_OF_BYTE = new char[256];
    /** Indexed by character; -1 for characters outside the alphabet. */
    private static final int[] BYTE_OF_CHAR;

    static {
        int next = 256;
        for (int b = 0; b < 256; b++) {
            boolean printable = b >= 0x21 && b <= 0x7E || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF;
            CHAR_OF_BYTE[b] = (char) (printable ? b : next++);
        }
        CHAR_LIMIT = next;
        BYTE_OF_CHAR = new int[next];
        Arrays.fill(BYTE_OF_CHAR, -1);
        for (int b = 0; b < 256; b++) {
            BYTE_OF_CHAR[CHAR_OF_BYTE[b]] = b;
        }
    }

    private ByteLevelAlphabet() {
    }

    static char encode(int unsignedByte) {
        return CHAR_OF_BYTE[unsignedByte];
    }

    /** The byte that {@code c} stands for, or -1 if {@code c} is not a character of the alphabet. */
    static int decode(int c) {
        return c >= 0 && c < BYTE_OF_CHAR.length ? BYTE_OF_CHAR[c] : -1;
    }

    /**
     * Appends the alphabet characters of the UTF-8 bytes of {@code text[from, to)} to
     * {@code out} starting at {@code at}, and returns the new end. {@code out} must have room
     * for 3 chars per UTF-16 unit. Unpaired surrogates must have been replaced before.
     */
    static int encodeUtf8(CharSequence text, int from, int to, char[] out, int at) {
        int n = at;
        for (int i = from; i < to; i++) {
            char c = text.charAt(i);
            if (c < 0x80) {
                out[n++] = CHAR_OF_BYTE[c];
            } else if (c < 0x800) {
                out[n++] = CHAR_OF_BYTE[0xC0 | c >> 6];
                out[n++] = CHAR_OF_BYTE[0x80 | c & 0x3F];
            } else if (Character.isHighSurrogate(c) && i + 1 < to && Character.isLowSurrogate(text.charAt(i + 1))) {
                int cp = Character.toCodePoint(c, text.charAt(++i));
                out[n++] = CHAR_OF_BYTE[0xF0 | cp >> 18];
                out[n++] = CHAR_OF_BYTE[0x80 | cp >> 12 & 0x3F];
                out[n++] = CHAR_OF_BYTE[0x80 | cp >> 6 & 0x3F];
                out[n++] = CHAR_OF_BYTE[0x80 | cp & 0x3F];
            } else {
                out[n++] = CHAR_OF_BYTE[0xE0 | c >> 12];
                out[n++] = CHAR_OF_BYTE[0x80 | c >> 6 & 0x3F];
                out[n++] = CHAR_OF_BYTE[0x80 | c & 0x3F];
            }
        }
        return n;
    }
}
