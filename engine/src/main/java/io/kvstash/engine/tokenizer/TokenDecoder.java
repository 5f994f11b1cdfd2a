package io.kvstash.engine.tokenizer;

import java.util.Arrays;

/**
 * Decodes generated tokens one at a time, for streaming. A token whose bytes end inside a
 * multi-byte UTF-8 character (a byte token {@code <0xNN>}, or a byte-level BPE piece such as
 * Llama 3's {@code "ĠðŁ"}, a space and half an emoji) is held back from that character on until
 * the character is complete, so every returned string is whole characters. The concatenation of all {@link #next} results and a final
 * {@link #flush} equals {@link Tokenizer#decode} of the same ids, including its leading-space rule
 * (the first token given to this decoder counts as the first token of the text). To stream text
 * that continues a prompt, where the first generated token's leading space belongs to the text,
 * give the decoder the prompt's BOS first: it decodes to nothing and uses up the stripping.
 *
 * <p>Not thread-safe: one decoder per stream. It reuses its buffer, and tokens that decode to
 * whole characters are answered from a precomputed table without allocating.
 */
public final class TokenDecoder {
    private final PieceTable pieces;
    private byte[] pending = new byte[16];
    private int pendingLength;
    private boolean first = true;

    TokenDecoder(PieceTable pieces) {
        this.pieces = pieces;
    }

    /**
     * The text that became complete with {@code id}: possibly empty (a control token, or bytes held
     * back), possibly including bytes held back from earlier tokens.
     *
     * @throws IllegalArgumentException if {@code id} is outside the vocabulary
     */
    public String next(int id) {
        byte[] piece = pieces.bytes(id);
        int skip = 0;
        if (first) {
            first = false;
            skip = pieces.leadingSpaceToStrip(piece);
        }
        if (pendingLength == 0 && skip == 0) {
            String whole = pieces.completeText(id);
            if (whole != null) {
                return whole;
            }
        }
        append(piece, skip);
        int held = ReplacingUtf8Decoder.incompleteTailLength(pending, pendingLength);
        int ready = pendingLength - held;
        if (ready == 0) {
            return "";
        }
        String text = ReplacingUtf8Decoder.decode(pending, 0, ready);
        System.arraycopy(pending, ready, pending, 0, held);
        pendingLength = held;
        return text;
    }

    /** Whatever is held back, with bytes that never completed a character as U+FFFD; empties the decoder. */
    public String flush() {
        if (pendingLength == 0) {
            return "";
        }
        String text = ReplacingUtf8Decoder.decode(pending, 0, pendingLength);
        pendingLength = 0;
        return text;
    }

    private void append(byte[] piece, int from) {
        int n = piece.length - from;
        if (pendingLength + n > pending.length) {
            pending = Arrays.copyOf(pending, Math.max(pending.length * 2, pendingLength + n));
        }
        System.arraycopy(piece, from, pending, pendingLength, n);
        pendingLength += n;
    }
}
