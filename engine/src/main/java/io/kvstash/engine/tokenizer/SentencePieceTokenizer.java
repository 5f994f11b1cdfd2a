package io.kvstash.engine.tokenizer;

import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.gguf.GgufFormatException;

import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

/**
 * The SentencePiece tokenizer of Llama-family GGUF files ({@code tokenizer.ggml.model = "llama"}),
 * reproducing llama.cpp's {@code llm_tokenizer_spm} id for id.
 *
 * <p>Encoding: special tokens are cut out first ({@link SpecialTokenSplitter}); each plain-text
 * fragment gets a space in front if it starts the text or follows a special token (and the
 * vocabulary adds a space prefix), has its spaces replaced by U+2581, and is split into
 * characters; then adjacent symbols are merged, best-scoring merged piece first, leftmost first
 * among equal scores, while the merged text is in the vocabulary. Characters left with no piece
 * are written as their UTF-8 bytes ({@code <0xNN>} tokens).
 *
 * <p>Symbols are UTF-16 ranges of the Java string rather than UTF-8 byte ranges as in llama.cpp:
 * both split the text into the same code points, so merges, ties and results are the same.
 */
public final class SentencePieceTokenizer implements Tokenizer {
    static final char SPACE_MARK = '\u2581';
    private static final int NO_TOKEN = -1;

    private final String[] pieces;
    private final float[] scores;
    private final Map<String, Integer> idsByText;
    private final int longestText;
    private final int[] byteTokens;
    private final SpecialTokenSplitter specialTokens;
    private final PieceTable pieceTable;
    private final int bos;
    private final int eos;
    private final int unknown;
    private final int endOfTurn;
    private final int endOfMessage;
    private final boolean addBosByDefault;
    private final boolean addEosByDefault;
    private final boolean addSpacePrefix;

    /**
     * @param pieces     the vocabulary as stored ({@code tokenizer.ggml.tokens})
     * @param scores     merge scores, or null for all zero
     * @param ggufTypes  {@code tokenizer.ggml.token_type} codes, or null for all normal
     * @param endOfTurn  EOT id, or -1 for none; likewise {@code endOfMessage}
     */
    SentencePieceTokenizer(String[] pieces, float[] scores, int[] ggufTypes, int bos, int eos, int unknown,
                           int endOfTurn, int endOfMessage, boolean addBosByDefault, boolean addEosByDefault,
                           boolean addSpacePrefix) {
        int n = pieces.length;
        if (scores != null && scores.length != n || ggufTypes != null && ggufTypes.length != n) {
            throw new IllegalArgumentException("vocabulary of " + n + " tokens has " + (scores == null ? "no" : scores.length)
                    + " scores and " + (ggufTypes == null ? "no" : ggufTypes.length) + " token types");
        }
        this.pieces = pieces.clone();
        this.scores = scores == null ? new float[n] : scores.clone();
        this.bos = bos;
        this.eos = eos;
        this.unknown = unknown;
        this.endOfTurn = endOfTurn;
        this.endOfMessage = endOfMessage;
        this.addBosByDefault = addBosByDefault;
        this.addEosByDefault = addEosByDefault;
        this.addSpacePrefix = addSpacePrefix;

        TokenType[] types = new TokenType[n];
        String[] texts = new String[n];
        idsByText = HashMap.newHashMap(n);
        int longest = 0;
        for (int id = 0; id < n; id++) {
            types[id] = ggufTypes == null ? TokenType.NORMAL : TokenType.fromGgufCode(ggufTypes[id]);
            // llama.cpp renames empty entries so they can never match; later duplicates win the lookup, as in its map.
            texts[id] = pieces[id].isEmpty() ? "[EMPTY_" + id + "]" : pieces[id];
            idsByText.put(texts[id], id);
            longest = Math.max(longest, texts[id].length());
        }
        this.longestText = longest;
        this.byteTokens = byteTokens(idsByText, unknown);
        this.specialTokens = new SpecialTokenSplitter(texts, types);
        this.pieceTable = new PieceTable(decodedBytes(texts, types), addSpacePrefix);
    }

    /** Reads the vocabulary and settings of a {@code "llama"} tokenizer, with llama.cpp's defaults for absent keys. */
    public static SentencePieceTokenizer fromGguf(GgufFile file) {
        String[] pieces = file.getStringArray("tokenizer.ggml.tokens");
        float[] scores = file.has("tokenizer.ggml.scores") ? file.getFloatArray("tokenizer.ggml.scores") : null;
        int[] types = file.has("tokenizer.ggml.token_type") ? file.getIntArray("tokenizer.ggml.token_type") : null;
        if (scores != null && scores.length != pieces.length || types != null && types.length != pieces.length) {
            throw new GgufFormatException(file.path() + ": " + pieces.length + " tokens but "
                    + (scores == null ? "-" : scores.length) + " scores and " + (types == null ? "-" : types.length) + " token types");
        }
        int n = pieces.length;
        return new SentencePieceTokenizer(pieces, scores, types,
                tokenId(file, "tokenizer.ggml.bos_token_id", 1, n),
                tokenId(file, "tokenizer.ggml.eos_token_id", 2, n),
                tokenId(file, "tokenizer.ggml.unknown_token_id", 0, n),
                tokenId(file, "tokenizer.ggml.eot_token_id", NO_TOKEN, n),
                tokenId(file, "tokenizer.ggml.eom_token_id", NO_TOKEN, n),
                file.getBoolean("tokenizer.ggml.add_bos_token", true),
                file.getBoolean("tokenizer.ggml.add_eos_token", false),
                file.getBoolean("tokenizer.ggml.add_space_prefix", true));
    }

    /**
     * A special token id; like llama.cpp, an id outside the vocabulary (converters write
     * 0xFFFFFFFF for "none") leaves the default in place.
     */
    private static int tokenId(GgufFile file, String key, int fallback, int vocabularySize) {
        if (!file.has(key)) {
            return fallback;
        }
        long id = file.getLong(key);
        return id >= 0 && id < vocabularySize ? (int) id : fallback;
    }

    /** The token for each byte value when a character has no piece of its own. */
    private static int[] byteTokens(Map<String, Integer> idsByText, int unknown) {
        int[] tokens = new int[256];
        HexFormat hex = HexFormat.of().withUpperCase();
        for (int b = 0; b < 256; b++) {
            Integer id = idsByText.get("<0x" + hex.toHexDigits((byte) b) + ">");
            if (id == null && b < 0x80) {
                // llama.cpp's second choice: the byte as a one-character piece.
                id = idsByText.get(String.valueOf((char) b));
            }
            // llama.cpp aborts here; a vocabulary without byte tokens gets <unk> instead.
            tokens[b] = id != null ? id : unknown;
        }
        return tokens;
    }

    /** What each token adds to decoded text when special tokens are not shown (llama.cpp's {@code token_to_piece}, special = false). */
    private static byte[][] decodedBytes(String[] texts, TokenType[] types) {
        byte[][] bytes = new byte[texts.length][];
        for (int id = 0; id < texts.length; id++) {
            bytes[id] = switch (types[id]) {
                case NORMAL -> texts[id].replace(SPACE_MARK, ' ').getBytes(StandardCharsets.UTF_8);
                case USER_DEFINED -> texts[id].getBytes(StandardCharsets.UTF_8);
                case BYTE -> new byte[] {byteValue(texts[id], id)};
                case CONTROL, UNKNOWN, UNUSED, UNDEFINED -> new byte[0];
            };
        }
        return bytes;
    }

    private static byte byteValue(String text, int id) {
        if (text.length() != 6 || !text.startsWith("<0x") || text.charAt(5) != '>') {
            throw new IllegalArgumentException("byte token " + id + " is '" + text + "', expected the form <0xNN>");
        }
        try {
            return (byte) HexFormat.fromHexDigits(text, 3, 5);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("byte token " + id + " is '" + text + "', expected the form <0xNN>", e);
        }
    }

    @Override
    public int[] encode(String text, boolean addBos, boolean parseSpecial) {
        String source = UnpairedSurrogates.replace(text);
        return encodeFragments(source, addBos, specialTokens.split(source, parseSpecial));
    }

    @Override
    public int[] encode(String text, boolean addBos, List<TextRange> literalRanges) {
        String source = UnpairedSurrogates.replace(text); // same length: the ranges still fit
        return encodeFragments(source, addBos, specialTokens.split(source, LiteralRanges.of(literalRanges, source.length())));
    }

    @Override
    public boolean containsControlTokenText(String text) {
        return specialTokens.containsSpecialOnlyText(UnpairedSurrogates.replace(text));
    }

    private int[] encodeFragments(String source, boolean addBos, List<SpecialTokenSplitter.Fragment> fragments) {
        TokenIdList out = new TokenIdList(source.length() / 3 + 4);
        if (addBos) {
            out.add(bos);
        }
        // The text start counts as "after a special token", so the first fragment gets the space
        // prefix whether or not BOS was added; so does text right after e.g. "<s>" (llama.cpp).
        boolean afterSpecial = true;
        for (SpecialTokenSplitter.Fragment fragment : fragments) {
            if (fragment.isPlainText()) {
                new MergeSession(source, fragment.start(), fragment.end(), addSpacePrefix && afterSpecial).tokenize(out);
                afterSpecial = false;
            } else {
                out.add(fragment.token());
                afterSpecial = true;
            }
        }
        return out.toArray();
    }

    @Override
    public String decode(int[] ids) {
        return pieceTable.decode(ids);
    }

    @Override
    public String piece(int id) {
        if (id < 0 || id >= pieces.length) {
            throw new IllegalArgumentException("token id " + id + " is outside the vocabulary [0, " + pieces.length + ")");
        }
        return pieces[id];
    }

    @Override
    public int vocabularySize() {
        return pieces.length;
    }

    @Override
    public int bos() {
        return bos;
    }

    @Override
    public int eos() {
        return eos;
    }

    public int unknown() {
        return unknown;
    }

    @Override
    public boolean addBosByDefault() {
        return addBosByDefault;
    }

    @Override
    public boolean addEosByDefault() {
        return addEosByDefault;
    }

    @Override
    public boolean isEndOfGeneration(int id) {
        return id >= 0 && (id == eos || id == endOfTurn || id == endOfMessage);
    }

    @Override
    public TokenDecoder newDecoder() {
        return new TokenDecoder(pieceTable);
    }

    /**
     * The merging of one plain-text fragment (llama.cpp's {@code llm_tokenizer_spm_session}).
     * Symbols live in parallel arrays as a doubly linked list; a merged-away symbol has length 0.
     */
    private final class MergeSession {
        private final char[] chars;
        private final int[] start;
        private final int[] length;
        private final int[] prev;
        private final int[] next;
        private final MergeQueue queue;

        MergeSession(String text, int from, int to, boolean spacePrefix) {
            int offset = spacePrefix ? 1 : 0;
            chars = new char[to - from + offset];
            if (spacePrefix) {
                chars[0] = SPACE_MARK;
            }
            text.getChars(from, to, chars, offset);
            for (int i = offset; i < chars.length; i++) {
                if (chars[i] == ' ') {
                    chars[i] = SPACE_MARK;
                }
            }
            int capacity = chars.length;
            start = new int[capacity];
            length = new int[capacity];
            prev = new int[capacity];
            next = new int[capacity];
            int count = 0;
            for (int i = 0; i < chars.length; count++) {
                int n = Character.isHighSurrogate(chars[i]) && i + 1 < chars.length ? 2 : 1;
                start[count] = i;
                length[count] = n;
                prev[count] = count - 1;
                i += n;
                next[count] = i == chars.length ? -1 : count + 1;
            }
            queue = new MergeQueue(2 * count + 8);
            for (int i = 1; i < count; i++) {
                offerMerge(i - 1, i);
            }
        }

        void tokenize(TokenIdList out) {
            while (!queue.isEmpty()) {
                queue.pop();
                int left = queue.left;
                int right = queue.right;
                // Entries are never removed from the queue; one whose symbols have changed since is stale.
                if (length[left] == 0 || length[right] == 0 || length[left] + length[right] != queue.length) {
                    continue;
                }
                length[left] += length[right];
                length[right] = 0;
                next[left] = next[right];
                if (next[right] >= 0) {
                    prev[next[right]] = left;
                }
                offerMerge(prev[left], left);
                offerMerge(left, next[left]);
            }
            // Every merged symbol is a vocabulary entry (it was only merged because it is one), so
            // llama.cpp's "resegment" reduces to: the symbol's piece, or its bytes when a lone
            // character has no piece.
            for (int i = 0; i != -1; i = next[i]) {
                Integer id = idsByText.get(new String(chars, start[i], length[i]));
                if (id != null) {
                    out.add(id);
                } else {
                    appendBytes(Character.codePointAt(chars, start[i]), out);
                }
            }
        }

        private void offerMerge(int left, int right) {
            if (left < 0 || right < 0) {
                return;
            }
            int merged = length[left] + length[right];
            if (merged > longestText) {
                return;
            }
            Integer id = idsByText.get(new String(chars, start[left], merged));
            if (id != null) {
                queue.push(scores[id], left, right, merged);
            }
        }

        private void appendBytes(int codePoint, TokenIdList out) {
            if (codePoint < 0x80) {
                out.add(byteTokens[codePoint]);
            } else if (codePoint < 0x800) {
                out.add(byteTokens[0xC0 | codePoint >> 6]);
                out.add(byteTokens[0x80 | codePoint & 0x3F]);
            } else if (codePoint < 0x10000) {
                out.add(byteTokens[0xE0 | codePoint >> 12]);
                out.add(byteTokens[0x80 | codePoint >> 6 & 0x3F]);
                out.add(byteTokens[0x80 | codePoint & 0x3F]);
            } else {
                out.add(byteTokens[0xF0 | codePoint >> 18]);
                out.add(byteTokens[0x80 | codePoint >> 12 & 0x3F]);
                out.add(byteTokens[0x80 | codePoint >> 6 & 0x3F]);
                out.add(byteTokens[0x80 | codePoint & 0x3F]);
            }
        }
    }
}
