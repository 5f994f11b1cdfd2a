package io.kvstash.engine.tokenizer;

import io.kvstash.engine.gguf.GgufFile;

import java.util.List;

/**
 * Turns text into token ids and back, the way llama.cpp does for the same GGUF vocabulary, so
 * that prompts, KV-cache keys and reference data agree token for token.
 *
 * <p>Implementations are immutable (apart from thread-safe internal caches) and safe to share
 * between threads; the {@link TokenDecoder}s they hand out are not (one per stream).
 */
public interface Tokenizer {

    /**
     * Tokenizes {@code text}.
     *
     * @param addBos       put {@link #bos()} first (see {@link #addBosByDefault()} for what the model expects).
     *                     EOS is never appended: a caller that honours {@link #addEosByDefault()} adds it.
     * @param parseSpecial whether control tokens such as {@code <s>} written in the text become their ids;
     *                     keep it off for user text, so that a user cannot forge control tokens.
     *                     User-defined tokens are matched either way, as llama.cpp does.
     */
    int[] encode(String text, boolean addBos, boolean parseSpecial);

    /**
     * Tokenizes a text that is trusted except in places: control-token text is parsed everywhere but
     * inside {@code literalRanges}, where it stays plain text (as with {@code parseSpecial} off). A
     * chat prompt is tokenized this way, so that the template's own markers become control tokens
     * while the messages' content cannot forge them. The text is still tokenized as a whole (no
     * cut at the range boundaries), so where the ranges hold no control-token text the ids are
     * exactly those of {@code encode(text, addBos, true)}.
     *
     * @param literalRanges ranges of {@code text}, sorted and disjoint
     * @throws IllegalArgumentException if the ranges are not sorted and disjoint or reach past the text
     */
    int[] encode(String text, boolean addBos, List<TextRange> literalRanges);

    /**
     * Whether {@code text} holds the text of a control (or unknown) token, so that
     * {@code encode(text, addBos, true)} and {@code encode(text, addBos, false)} may differ.
     */
    boolean containsControlTokenText(String text);

    /**
     * The text of {@code ids}, as llama.cpp's detokenizer gives it without special tokens: control,
     * unknown and unused tokens add nothing, byte tokens (and the byte-level pieces of BPE
     * vocabularies) are reassembled into UTF-8 (bytes that do not form a character become U+FFFD).
     * For a vocabulary with a space prefix (SentencePiece), one leading space is removed from the
     * piece of the <em>first id in the array</em> only: after a leading BOS the space stays, exactly
     * as in llama.cpp. With a Llama 2 vocabulary, {@code decode(encode(t, false, false))} is {@code t}
     * and {@code decode(encode(t, true, false))} is {@code " " + t} for non-empty {@code t}; with a
     * byte-level BPE vocabulary both are {@code t} (BOS decodes to nothing). llama.cpp's optional
     * {@code clean_spaces} pass is not applied.
     *
     * @throws IllegalArgumentException if an id is outside the vocabulary
     */
    String decode(int[] ids);

    /** The vocabulary entry of {@code id} as stored in the GGUF file (e.g. {@code "▁Once"}, {@code "<0x0A>"}). */
    String piece(int id);

    int vocabularySize();

    int bos();

    int eos();

    /** Whether the model wants BOS in front of a prompt ({@code tokenizer.ggml.add_bos_token}). */
    boolean addBosByDefault();

    /** Whether the model wants EOS after a text it is given ({@code tokenizer.ggml.add_eos_token}; rare, e.g. embedding models). */
    boolean addEosByDefault();

    /**
     * Whether generating {@code id} ends the generation: EOS, and EOT/EOM where the vocabulary has
     * them. Byte-level BPE vocabularies also end on the tokens llama.cpp recognises by their text
     * ({@code <|eot_id|>}, {@code <|eom_id|>}, {@code <|im_end|>}, {@code <|endoftext|>}, ...).
     */
    boolean isEndOfGeneration(int id);

    /** A streaming decoder whose concatenated output equals {@link #decode} of the same ids. */
    TokenDecoder newDecoder();

    /**
     * The tokenizer that {@code tokenizer.ggml.model} names.
     *
     * @throws IllegalArgumentException if the file has no tokenizer, one of a kind not supported yet,
     *                                  or a byte-level BPE pre-tokenizer ({@code tokenizer.ggml.pre}) not supported
     */
    static Tokenizer fromGguf(GgufFile file) {
        String model = file.getString("tokenizer.ggml.model", null);
        if (model == null) {
            throw new IllegalArgumentException(file.path() + " has no tokenizer (metadata 'tokenizer.ggml.model' is missing)");
        }
        return switch (model) {
            case "llama" -> SentencePieceTokenizer.fromGguf(file);
            case "gpt2" -> BpeTokenizer.fromGguf(file);
            default -> throw new IllegalArgumentException("tokenizer model '" + model + "' of " + file.path()
                    + " is not supported (supported: 'llama' SentencePiece, 'gpt2' byte-level BPE)");
        };
    }
}
