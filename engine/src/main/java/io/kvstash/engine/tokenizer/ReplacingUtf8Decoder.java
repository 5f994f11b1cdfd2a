package io.kvstash.engine.tokenizer;

/**
 * UTF-8 to text where each maximal ill-formed subpart becomes one U+FFFD (the Unicode Standard's
 * recommended practice, chapter 3.9): a decoder restarts at the first byte that cannot continue
 * the current character, without consuming it.
 *
 * <p>Decoded pieces need a rule under which decoding bytes in chunks gives the same text as
 * decoding them whole. With this one, a cut anywhere the decoder is not in the middle of a
 * character is harmless. Java's own decoder cannot be used: it replaces an encoded surrogate
 * ({@code ED A0..BF xx}) as one unit but other ill-formed sequences byte by byte, so a chunk
 * boundary inside such a sequence changes the number of U+FFFD.
 */
final class ReplacingUtf8Decoder {
    private static final char REPLACEMENT = '\uFFFD';

    private ReplacingUtf8Decoder() {
    }

    static String decode(byte[] bytes, int from, int to) {
        // Never more UTF-16 chars than UTF-8 bytes: 1 byte -> 1, 2-3 -> 1, 4 -> 2, ill-formed >= 1 -> 1.
        char[] out = new char[to - from];
        int n = 0;
        int i = from;
        while (i < to) {
            int lead = bytes[i] & 0xFF;
            if (lead < 0x80) {
                out[n++] = (char) lead;
                i++;
                continue;
            }
            int continuations = continuationCount(lead);
            if (continuations == 0) {
                out[n++] = REPLACEMENT;
                i++;
                continue;
            }
            int codePoint = lead & (0x3F >> continuations);
            int j = i + 1;
            int seen = 0;
            while (seen < continuations && j < to && fits(lead, seen + 1, bytes[j] & 0xFF)) {
                codePoint = codePoint << 6 | (bytes[j] & 0x3F);
                j++;
                seen++;
            }
            if (seen < continuations) {
                out[n++] = REPLACEMENT;
            } else if (codePoint >= 0x10000) {
                out[n++] = Character.highSurrogate(codePoint);
                out[n++] = Character.lowSurrogate(codePoint);
            } else {
                out[n++] = (char) codePoint;
            }
            i = j;
        }
        return new String(out, 0, n);
    }

    /**
     * How many bytes at the end of {@code bytes[0, length)} are a character that more bytes could
     * still complete. Everything before them can be decoded now and gives the same text as when
     * decoded together with what follows.
     */
    static int incompleteTailLength(byte[] bytes, int length) {
        for (int back = 1; back <= Math.min(3, length); back++) {
            int b = bytes[length - back] & 0xFF;
            if (b < 0x80) {
                return 0;
            }
            if (b >= 0xC0) {
                // A byte from C0 up always starts a new character (or a U+FFFD) in the decoder
                // above, so the last one decides whether the text ends inside a character.
                int continuations = continuationCount(b);
                if (continuations == 0 || back > continuations) {
                    return 0;
                }
                for (int k = 1; k < back; k++) {
                    if (!fits(b, k, bytes[length - back + k] & 0xFF)) {
                        return 0;
                    }
                }
                return back;
            }
        }
        return 0;
    }

    /** Continuation bytes a well-formed character with this lead byte has; 0 for bytes that cannot lead. */
    private static int continuationCount(int lead) {
        if (lead >= 0xC2 && lead <= 0xDF) {
            return 1;
        }
        if (lead >= 0xE0 && lead <= 0xEF) {
            return 2;
        }
        if (lead >= 0xF0 && lead <= 0xF4) {
            return 3;
        }
        return 0;
    }

    /** Whether {@code b} is allowed as continuation byte number {@code position} (1-based) after {@code lead}. */
    private static boolean fits(int lead, int position, int b) {
        int low = 0x80;
        int high = 0xBF;
        if (position == 1) {
            // Narrower second bytes rule out overlong forms, surrogates and code points above U+10FFFF.
            switch (lead) {
                case 0xE0 -> low = 0xA0;
                case 0xED -> high = 0x9F;
                case 0xF0 -> low = 0x90;
                case 0xF4 -> high = 0x8F;
                default -> { }
            }
        }
        return b >= low && b <= high;
    }
}
