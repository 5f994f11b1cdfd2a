package io.kvstash.engine.tokenizer;

import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.gguf.GgufFormatException;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The byte-level BPE tokenizer of GPT-2-style GGUF vocabularies ({@code tokenizer.ggml.model =
 * "gpt2"}: Llama 3, Qwen, SmolLM, ...), reproducing llama.cpp's {@code llm_tokenizer_bpe} id for id.
 *
 * <p>Encoding: special tokens are cut out first ({@link SpecialTokenSplitter}); each plain-text
 * fragment is cut into words by the {@link PreTokenizer} that {@code tokenizer.ggml.pre} names;
 * each word's UTF-8 bytes are written in the {@link ByteLevelAlphabet}, one symbol per byte; then
 * adjacent symbols are merged, lowest merge rank first, leftmost first among equal ranks, while a
 * merge for the pair exists. Each final symbol is its token, or, if its text is not a token, the
 * tokens of its single bytes. With Llama 3's pre-tokenizer a word that is itself a token is taken
 * whole ({@code ignore_merges}).
 *
 * <p>Merging is a heap over the word's symbols (O(n log n), so a 100 KB text without spaces is
 * no worse than any other), and the tokens of short words are remembered in a bounded,
 * thread-safe cache, since natural text repeats its words.
 *
 * <p>Decoding is llama.cpp's {@code token_to_piece}: a normal token's characters map back to
 * bytes through the alphabet, a user-defined token is its text, control, unknown and unused tokens
 * are nothing. It does not apply llama.cpp's optional {@code clean_spaces} pass of
 * {@code llama_detokenize} (which would turn {@code "a ."} into {@code "a."} and break the
 * round trip), and there is no leading space to strip: {@code decode(encode(t, false, false))}
 * is {@code t} for every text without unpaired surrogates.
 */
public final class BpeTokenizer implements Tokenizer {
    /** llama.cpp's ids for a BPE vocabulary whose file names no BOS or EOS. */
    private static final int DEFAULT_BOS_EOS = 11;
    private static final int NO_TOKEN = -1;
    /** Words longer than this (in bytes) are merged every time rather than cached. */
    private static final int CACHED_WORD_BYTES = 64;
    private static final int CACHE_ENTRIES = 1 << 16;

    private final String[] pieces;
    private final Map<String, Integer> idsByText;
    private final int[] byteTokens;
    private final MergeRanks merges;
    private final PreTokenizer preTokenizer;
    private final SpecialTokenSplitter specialTokens;
    private final SpecialTokens roles;
    private final PieceTable pieceTable;
    private final boolean addBosByDefault;
    private final boolean addEosByDefault;
    private final ConcurrentHashMap<String, int[]> wordCache = new ConcurrentHashMap<>();

    /**
     * @param pieces    the vocabulary as stored ({@code tokenizer.ggml.tokens}), in the byte-level alphabet
     * @param ggufTypes {@code tokenizer.ggml.token_type} codes, or null for all normal
     * @param merges    {@code tokenizer.ggml.merges}
     * @param endOfTurn EOT id from the file, or -1 to recognise it by text; likewise {@code endOfMessage}
     * @param padding   padding id, or -1
     */
    BpeTokenizer(String[] pieces, int[] ggufTypes, String[] merges, PreTokenizer preTokenizer, int bos, int eos,
                 int endOfTurn, int endOfMessage, int padding, boolean addBosByDefault, boolean addEosByDefault) {
        int n = pieces.length;
        if (ggufTypes != null && ggufTypes.length != n) {
            throw new IllegalArgumentException("vocabulary of " + n + " tokens has " + ggufTypes.length + " token types");
        }
        if (addBosByDefault && bos < 0) {
            throw new IllegalArgumentException("tokenizer.ggml.add_bos_token is true, but tokenizer.ggml.bos_token_id is not set");
        }
        if (addEosByDefault && eos < 0) {
            throw new IllegalArgumentException("tokenizer.ggml.add_eos_token is true, but tokenizer.ggml.eos_token_id is not set");
        }
        this.pieces = pieces.clone();
        this.preTokenizer = preTokenizer;
        this.addBosByDefault = addBosByDefault;
        this.addEosByDefault = addEosByDefault;

        TokenType[] types = new TokenType[n];
        String[] texts = new String[n];
        idsByText = HashMap.newHashMap(n);
        for (int id = 0; id < n; id++) {
            types[id] = ggufTypes == null ? TokenType.NORMAL : TokenType.fromGgufCode(ggufTypes[id]);
            // llama.cpp renames empty entries so they can never match; later duplicates win the lookup.
            texts[id] = pieces[id].isEmpty() ? "[EMPTY_" + id + "]" : pieces[id];
            idsByText.put(texts[id], id);
        }
        this.roles = SpecialTokens.resolve(idsByText, types, bos, eos, endOfTurn, endOfMessage, padding);
        this.merges = new MergeRanks(merges, idsByText, n, ByteLevelAlphabet.CHAR_LIMIT);
        this.byteTokens = new int[256];
        for (int b = 0; b < 256; b++) {
            Integer id = idsByText.get(String.valueOf(ByteLevelAlphabet.encode(b)));
            byteTokens[b] = id == null ? NO_TOKEN : id;
        }
        this.specialTokens = new SpecialTokenSplitter(texts, types);
        this.pieceTable = new PieceTable(decodedBytes(texts, types), false);
    }

    /**
     * Reads the vocabulary, merges and settings of a {@code "gpt2"} tokenizer, with llama.cpp's
     * defaults for absent keys.
     *
     * @throws IllegalArgumentException if {@code tokenizer.ggml.pre} names a pre-tokenizer not supported
     * @throws GgufFormatException      if the merges are missing or the arrays disagree in length
     */
    public static BpeTokenizer fromGguf(GgufFile file) {
        String[] pieces = file.getStringArray("tokenizer.ggml.tokens");
        int[] types = file.has("tokenizer.ggml.token_type") ? file.getIntArray("tokenizer.ggml.token_type") : null;
        if (types != null && types.length != pieces.length) {
            throw new GgufFormatException(file.path() + ": " + pieces.length + " tokens but " + types.length + " token types");
        }
        if (!file.has("tokenizer.ggml.merges")) {
            throw new GgufFormatException(file.path() + ": byte-level BPE vocabulary without 'tokenizer.ggml.merges'");
        }
        String[] merges = file.getStringArray("tokenizer.ggml.merges");
        String preName = file.getString("tokenizer.ggml.pre", null);
        PreTokenizer preTokenizer;
        try {
            preTokenizer = PreTokenizer.forName(preName);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(file.path() + ": " + e.getMessage(), e);
        }
        int n = pieces.length;
        int fallback = DEFAULT_BOS_EOS < n ? DEFAULT_BOS_EOS : NO_TOKEN;
        return new BpeTokenizer(pieces, types, merges, preTokenizer,
                tokenId(file, "tokenizer.ggml.bos_token_id", fallback, n),
                tokenId(file, "tokenizer.ggml.eos_token_id", fallback, n),
                tokenId(file, "tokenizer.ggml.eot_token_id", NO_TOKEN, n),
                tokenId(file, "tokenizer.ggml.eom_token_id", NO_TOKEN, n),
                tokenId(file, "tokenizer.ggml.padding_token_id", NO_TOKEN, n),
                file.getBoolean("tokenizer.ggml.add_bos_token", preTokenizer.addsBosByDefault()),
                file.getBoolean("tokenizer.ggml.add_eos_token", false));
    }

    /** A special token id; like llama.cpp, an id outside the vocabulary leaves the default in place. */
    private static int tokenId(GgufFile file, String key, int fallback, int vocabularySize) {
        if (!file.has(key)) {
            return fallback;
        }
        long id = file.getLong(key);
        return id >= 0 && id < vocabularySize ? (int) id : fallback;
    }

    /** What each token adds to decoded text when special tokens are not shown (llama.cpp's {@code token_to_piece}, special = false). */
    private static byte[][] decodedBytes(String[] texts, TokenType[] types) {
        byte[][] bytes = new byte[texts.length][];
        for (int id = 0; id < texts.length; id++) {
            bytes[id] = switch (types[id]) {
                case NORMAL -> fromAlphabet(texts[id]);
                case USER_DEFINED -> texts[id].getBytes(StandardCharsets.UTF_8);
                case BYTE -> byteToken(texts[id]);
                case CONTROL, UNKNOWN, UNUSED, UNDEFINED -> new byte[0];
            };
        }
        return bytes;
    }

    /**
     * The bytes a normal token's text stands for. A character outside the alphabet (only in a
     * malformed vocabulary) is kept as its own UTF-8; llama.cpp writes an {@code [UNK_BYTE_0x..]}
     * marker there instead.
     */
    private static byte[] fromAlphabet(String text) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(text.length());
        for (int i = 0; i < text.length(); ) {
            int cp = text.codePointAt(i);
            int b = ByteLevelAlphabet.decode(cp);
            if (b >= 0) {
                out.write(b);
            } else {
                out.writeBytes(new String(Character.toChars(cp)).getBytes(StandardCharsets.UTF_8));
            }
            i += Character.charCount(cp);
        }
        return out.toByteArray();
    }

    /** A byte token: {@code <0xNN>} as llama.cpp reads it, otherwise its text in the alphabet. */
    private static byte[] byteToken(String text) {
        if (text.length() == 6 && text.startsWith("<0x") && text.charAt(5) == '>'
                && HexFormat.isHexDigit(text.charAt(3)) && HexFormat.isHexDigit(text.charAt(4))) {
            return new byte[] {(byte) HexFormat.fromHexDigits(text, 3, 5)};
        }
        return fromAlphabet(text);
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
            out.add(roles.bos);
        }
        Session session = null;
        for (SpecialTokenSplitter.Fragment fragment : fragments) {
            if (!fragment.isPlainText()) {
                out.add(fragment.token());
                continue;
            }
            if (session == null) {
                session = new Session();
            }
            int start = fragment.start();
            for (int end : preTokenizer.split(source, fragment.start(), fragment.end())) {
                session.encodeWord(source, start, end, out);
                start = end;
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
        return roles.bos;
    }

    @Override
    public int eos() {
        return roles.eos;
    }

    /** The end-of-turn token ({@code <|eot_id|>}, {@code <|im_end|>}, ...), or -1 if the vocabulary has none. */
    public int endOfTurn() {
        return roles.endOfTurn;
    }

    /** The end-of-message token ({@code <|eom_id|>}), or -1. */
    public int endOfMessage() {
        return roles.endOfMessage;
    }

    /** {@code tokenizer.ggml.padding_token_id}, or -1. */
    public int padding() {
        return roles.padding;
    }

    /** The name of the pre-tokenizer in use (llama.cpp's canonical spelling for it). */
    public String preTokenizer() {
        return preTokenizer.name();
    }

    @Override
    public boolean addBosByDefault() {
        return addBosByDefault;
    }

    @Override
    public boolean addEosByDefault() {
        return addEosByDefault;
    }

    /** EOS, EOT, EOM, and every token llama.cpp ends generation on by its text (see {@link SpecialTokens}). */
    @Override
    public boolean isEndOfGeneration(int id) {
        return roles.isEndOfGeneration(id);
    }

    @Override
    public TokenDecoder newDecoder() {
        return new TokenDecoder(pieceTable);
    }

    /**
     * The buffers for the words of one {@link #encode} call. Symbols of a word live in parallel
     * arrays as a doubly linked list, as in {@link SentencePieceTokenizer}; a merged-away symbol
     * has length 0.
     */
    private final class Session {
        private char[] word = new char[64];
        private int[] symbol = new int[64];
        private int[] start = new int[64];
        private int[] length = new int[64];
        private int[] prev = new int[64];
        private int[] next = new int[64];
        private final MergeQueue queue = new MergeQueue(128);
        private final TokenIdList wordTokens = new TokenIdList(16);

        void encodeWord(String text, int from, int to, TokenIdList out) {
            int capacity = 3 * (to - from);
            if (word.length < capacity) {
                grow(capacity);
            }
            int n = ByteLevelAlphabet.encodeUtf8(text, from, to, word, 0);
            String key = new String(word, 0, n);
            if (preTokenizer.ignoreMerges()) {
                Integer whole = idsByText.get(key);
                if (whole != null) {
                    out.add(whole);
                    return;
                }
            }
            if (n > CACHED_WORD_BYTES) {
                merge(n, out);
                return;
            }
            int[] cached = wordCache.get(key);
            if (cached == null) {
                wordTokens.clear();
                merge(n, wordTokens);
                cached = wordTokens.toArray();
                if (wordCache.size() >= CACHE_ENTRIES) {
                    wordCache.clear(); // crude but bounded; natural text refills it with its frequent words
                }
                wordCache.put(key, cached);
            }
            out.addAll(cached);
        }

        private void grow(int capacity) {
            int c = Math.max(capacity, word.length * 2);
            word = new char[c];
            symbol = new int[c];
            start = new int[c];
            length = new int[c];
            prev = new int[c];
            next = new int[c];
        }

        /** llama.cpp's {@code llm_tokenizer_bpe_session::tokenize} for one word of {@code n} bytes in {@link #word}. */
        private void merge(int n, TokenIdList out) {
            for (int i = 0; i < n; i++) {
                symbol[i] = merges.symbolOf(word[i]);
                start[i] = i;
                length[i] = 1;
                prev[i] = i - 1;
                next[i] = i + 1 < n ? i + 1 : -1;
            }
            queue.clear();
            for (int i = 1; i < n; i++) {
                offer(i - 1, i);
            }
            while (!queue.isEmpty()) {
                queue.pop();
                int left = queue.left;
                int right = queue.right;
                // Entries are never removed from the queue; one whose symbols have changed since is stale
                // (symbols only grow, so unchanged lengths mean unchanged symbols).
                if (length[left] == 0 || length[right] == 0 || length[left] + length[right] != queue.length) {
                    continue;
                }
                symbol[left] = (int) merges.find(symbol[left], symbol[right]);
                length[left] += length[right];
                length[right] = 0;
                next[left] = next[right];
                if (next[right] >= 0) {
                    prev[next[right]] = left;
                }
                offer(prev[left], left);
                offer(left, next[left]);
            }
            for (int i = 0; i != -1; i = next[i]) {
                int s = symbol[i];
                if (s >= 0 && s < pieces.length) {
                    out.add(s);
                    continue;
                }
                // Not a token: its bytes one by one, skipping any byte without a token, as llama.cpp does.
                for (int k = start[i]; k < start[i] + length[i]; k++) {
                    int t = byteTokens[ByteLevelAlphabet.decode(word[k])];
                    if (t >= 0) {
                        out.add(t);
                    }
                }
            }
        }

        private void offer(int left, int right) {
            if (left < 0 || right < 0) {
                return;
            }
            long found = merges.find(symbol[left], symbol[right]);
            if (found >= 0) {
                queue.push(-(float) (found >>> 32), left, right, length[left] + length[right]);
            }
        }
    }
}
