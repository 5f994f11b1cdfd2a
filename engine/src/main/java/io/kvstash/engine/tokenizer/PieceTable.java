package io.kvstash.engine.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * The bytes each token contributes to decoded text, worked out once per vocabulary so that
 * decoding is array copies only. Shared by {@link Tokenizer#decode} and {@link TokenDecoder},
 * which is what keeps the two consistent.
 */
final class PieceTable {
    private final byte[][] bytes;
    // The piece as a String when its bytes are complete UTF-8 on their own, else null: lets the
    // streaming decoder hand out most tokens without allocating.
    private final String[] completeText;
    private final boolean stripsFirstSpace;

    /**
     * @param bytes            per token id, the UTF-8 bytes it decodes to (empty for tokens that decode to nothing)
     * @param stripsFirstSpace whether one leading space of the first decoded token is dropped
     *                         (SentencePiece vocabularies that add a space prefix when encoding)
     */
    PieceTable(byte[][] bytes, boolean stripsFirstSpace) {
        this.bytes = bytes;
        this.stripsFirstSpace = stripsFirstSpace;
        this.completeText = new String[bytes.length];
        for (int id = 0; id < bytes.length; id++) {
            String text = ReplacingUtf8Decoder.decode(bytes[id], 0, bytes[id].length);
            if (Arrays.equals(text.getBytes(StandardCharsets.UTF_8), bytes[id])) {
                completeText[id] = text;
            }
        }
    }

    int size() {
        return bytes.length;
    }

    byte[] bytes(int id) {
        if (id < 0 || id >= bytes.length) {
            throw new IllegalArgumentException("token id " + id + " is outside the vocabulary [0, " + bytes.length + ")");
        }
        return bytes[id];
    }

    /** The decoded text of {@code id} if its bytes form whole characters by themselves, else null. */
    String completeText(int id) {
        return completeText[id];
    }

    boolean stripsFirstSpace() {
        return stripsFirstSpace;
    }

    String decode(int[] ids) {
        int total = 0;
        for (int id : ids) {
            total += bytes(id).length;
        }
        byte[] out = new byte[total];
        int length = 0;
        for (int i = 0; i < ids.length; i++) {
            byte[] piece = bytes[ids[i]];
            // llama.cpp's detokenize strips the space from the first token of the array, whatever it
            // is: a leading BOS decodes to nothing but still uses up the stripping.
            int skip = i == 0 ? leadingSpaceToStrip(piece) : 0;
            System.arraycopy(piece, skip, out, length, piece.length - skip);
            length += piece.length - skip;
        }
        return ReplacingUtf8Decoder.decode(out, 0, length);
    }

    int leadingSpaceToStrip(byte[] piece) {
        return stripsFirstSpace && piece.length > 0 && piece[0] == ' ' ? 1 : 0;
    }
}
