package io.kvstash.engine.convert;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.regex.Pattern;

/**
 * A llama2.c {@code tokenizer.bin} turned into the vocabulary of a GGUF {@code "llama"}
 * (SentencePiece) tokenizer, as llama.cpp's {@code convert-llama2c-to-ggml} does it.
 *
 * <p>The file is an int32 {@code max_token_length}, then per token a float32 score, an int32 byte
 * length and that many UTF-8 bytes. llama2.c's exporter changed SentencePiece's pieces on the way:
 * "▁" became a space, BOS and EOS became {@code "\n<s>\n"} and {@code "\n</s>\n"}, and its first
 * version also turned the byte-fallback pieces {@code <0x00>}…{@code <0xFF>} into the characters
 * U+0000…U+00FF. All of that is undone here, so the tokenizer built from the GGUF file splits text
 * exactly as the original SentencePiece model does.
 *
 * @param pieces the GGUF piece of each id
 * @param scores SentencePiece scores (log-probabilities), unchanged
 * @param types  llama.cpp token types: 1 normal, 2 unknown, 3 control, 6 byte
 */
public record Llama2cVocabulary(List<String> pieces, float[] scores, int[] types) {
    public static final int UNKNOWN_ID = 0;
    /** llama2.c's run.c hard-codes these two. */
    public static final int BOS_ID = 1;
    public static final int EOS_ID = 2;
    static final int NORMAL = 1;
    static final int UNKNOWN = 2;
    static final int CONTROL = 3;
    static final int BYTE = 6;
    /** SentencePiece's byte-fallback pieces sit right after the three special tokens. */
    private static final int FIRST_BYTE_ID = 3;
    private static final Pattern BYTE_PIECE = Pattern.compile("<0x[0-9A-F]{2}>");

    /** Reads {@code vocabSize} tokens from {@code data} (the bytes of {@code source}); nothing may follow them. */
    static Llama2cVocabulary read(MemorySegment data, int vocabSize, FileSlice source) {
        Cursor in = new Cursor(data, source);
        int maxLength = in.int32("max_token_length");
        if (maxLength < 0) {
            throw in.fail("max_token_length is " + maxLength + ", must not be negative");
        }
        byte[][] raw = new byte[vocabSize][];
        float[] scores = new float[vocabSize];
        for (int id = 0; id < vocabSize; id++) {
            scores[id] = in.float32("score of token " + id);
            if (Float.isNaN(scores[id])) {
                throw in.fail("token " + id + " has score NaN");
            }
            int length = in.int32("length of token " + id);
            if (length < 0 || length > maxLength) {
                throw in.fail("token " + id + " is " + length + " bytes long, outside [0, max_token_length " + maxLength + "]");
            }
            raw[id] = in.bytes(length, "piece of token " + id);
        }
        if (in.remaining() != 0) {
            throw in.fail(in.remaining() + " bytes follow the " + vocabSize + " tokens the checkpoint's vocab_size announces"
                    + " (is this the tokenizer of another model?)");
        }

        String[] texts = new String[vocabSize];
        for (int id = 0; id < vocabSize; id++) {
            texts[id] = utf8(raw[id], id, in);
        }
        boolean charBytePieces = hasCharBytePieces(texts);
        HexFormat hex = HexFormat.of().withUpperCase();
        List<String> pieces = new ArrayList<>(vocabSize);
        int[] types = new int[vocabSize];
        for (int id = 0; id < vocabSize; id++) {
            String text = texts[id];
            String piece;
            int type;
            if (id == UNKNOWN_ID) {
                piece = "<unk>";
                type = UNKNOWN;
            } else if (id == BOS_ID) {
                piece = "<s>";
                type = CONTROL;
            } else if (id == EOS_ID) {
                piece = "</s>";
                type = CONTROL;
            } else if (charBytePieces && id < FIRST_BYTE_ID + 256) {
                piece = "<0x" + hex.toHexDigits((byte) (id - FIRST_BYTE_ID)) + ">";
                type = BYTE;
            } else if (BYTE_PIECE.matcher(text).matches()) {
                piece = text;
                type = BYTE;
            } else if (text.isEmpty()) {
                piece = text;
                type = CONTROL;
            } else {
                piece = text.replace(' ', '\u2581');
                type = NORMAL;
            }
            pieces.add(piece);
            types[id] = type;
        }
        return new Llama2cVocabulary(List.copyOf(pieces), scores, types);
    }

    /**
     * Whether ids 3…258 hold the characters U+0000…U+00FF in order: the first llama2.c export of
     * the byte-fallback pieces. Only the whole run counts, since single characters such as "a" are
     * also ordinary pieces elsewhere in the vocabulary.
     */
    private static boolean hasCharBytePieces(String[] texts) {
        if (texts.length < FIRST_BYTE_ID + 256) {
            return false;
        }
        for (int b = 0; b < 256; b++) {
            String t = texts[FIRST_BYTE_ID + b];
            if (t.length() != 1 || t.charAt(0) != (char) b) {
                return false;
            }
        }
        return true;
    }

    private static String utf8(byte[] bytes, int id, Cursor in) {
        try {
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes))
                    .toString();
        } catch (CharacterCodingException e) {
            throw in.fail("token " + id + " is not valid UTF-8 (" + HexFormat.ofDelimiter(" ").formatHex(bytes) + ")");
        }
    }

    /** Bounds-checked little-endian reader over the tokenizer's bytes. */
    private static final class Cursor {
        private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        private final MemorySegment data;
        private final FileSlice source;
        private long pos;

        Cursor(MemorySegment data, FileSlice source) {
            this.data = data;
            this.source = source;
        }

        long remaining() {
            return data.byteSize() - pos;
        }

        Llama2cFormatException fail(String message) {
            return new Llama2cFormatException(source + ": llama2.c tokenizer: " + message);
        }

        private void need(long n, String what) {
            if (n > remaining()) {
                throw fail("truncated: " + what + " needs " + n + " bytes at offset " + pos + " but only " + remaining() + " remain");
            }
        }

        int int32(String what) {
            need(4, what);
            int v = data.get(I32, pos);
            pos += 4;
            return v;
        }

        float float32(String what) {
            need(4, what);
            float v = data.get(F32, pos);
            pos += 4;
            return v;
        }

        byte[] bytes(int n, String what) {
            need(n, what);
            byte[] b = data.asSlice(pos, n).toArray(ValueLayout.JAVA_BYTE);
            pos += n;
            return b;
        }
    }
}
