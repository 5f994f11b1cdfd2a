package io.kvstash.engine.tokenizer;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * The roles of the special tokens of a vocabulary, found the way llama.cpp's {@code llama_vocab::load}
 * finds them: GGUF files name BOS, EOS and sometimes EOT, EOM and padding by id, and the rest is
 * recognised by token text (converters rarely write {@code tokenizer.ggml.eot_token_id}; Llama 3
 * and Qwen files have none). A token recognised by its text as end of turn, end of message, a
 * fill-in-the-middle marker or end of generation is made a control token, as llama.cpp does:
 * it then decodes to nothing and is only parsed from text when special-token parsing is on.
 *
 * <p>Not modelled: llama.cpp's workarounds that drop {@code <|end|>} (gpt-oss) and {@code </s>}
 * (Gemma 4, PaddleOCR) from the end-of-generation set, and its "unused" detection.
 */
final class SpecialTokens {
    /** llama.cpp's EOT texts, in the order this class prefers them when several are present. */
    static final List<String> END_OF_TURN_TEXTS = List.of("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
            "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>");
    static final List<String> END_OF_MESSAGE_TEXTS = List.of("<|eom_id|>");
    private static final List<String> FIM_PREFIX_TEXTS = List.of("<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
            "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>", "<|prefix|>");
    private static final List<String> FIM_SUFFIX_TEXTS = List.of("<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
            "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>", "<|suffix|>");
    private static final List<String> FIM_MIDDLE_TEXTS = List.of("<|fim_middle|>", "<fim-middle>", "<fim_middle>",
            "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>", "<|middle|>");
    // llama.cpp counts these three FIM markers as end of generation too.
    private static final List<String> FIM_PAD_TEXTS = List.of("<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]");
    private static final List<String> FIM_REPO_TEXTS = List.of("<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>");
    private static final List<String> FIM_SEPARATOR_TEXTS = List.of("<|file_sep|>");
    /** Texts that end generation whatever the ids in the file say (llama.cpp's list, issue 9606). */
    static final List<String> END_OF_GENERATION_TEXTS = List.of("<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>",
            "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>",
            "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
            "<｜end▁of▁sentence｜>", "[e~[");

    final int bos;
    final int eos;
    /** EOT, or -1; likewise {@link #endOfMessage} and {@link #padding}. */
    final int endOfTurn;
    final int endOfMessage;
    final int padding;
    private final int[] endOfGeneration; // sorted

    private SpecialTokens(int bos, int eos, int endOfTurn, int endOfMessage, int padding, int[] endOfGeneration) {
        this.bos = bos;
        this.eos = eos;
        this.endOfTurn = endOfTurn;
        this.endOfMessage = endOfMessage;
        this.padding = padding;
        this.endOfGeneration = endOfGeneration;
    }

    /**
     * Resolves the roles and marks the tokens recognised by text as {@link TokenType#CONTROL} in {@code types}.
     *
     * @param idsByText the vocabulary's text-to-id map
     * @param types the token types, changed in place
     * @param endOfTurn EOT from the file, or -1 to look for it by text; likewise {@code endOfMessage}
     */
    static SpecialTokens resolve(Map<String, Integer> idsByText, TokenType[] types, int bos, int eos, int endOfTurn, int endOfMessage, int padding) {
        int eot = endOfTurn >= 0 ? endOfTurn : find(idsByText, types, END_OF_TURN_TEXTS);
        int eom = endOfMessage >= 0 ? endOfMessage : find(idsByText, types, END_OF_MESSAGE_TEXTS);
        find(idsByText, types, FIM_PREFIX_TEXTS);
        find(idsByText, types, FIM_SUFFIX_TEXTS);
        find(idsByText, types, FIM_MIDDLE_TEXTS);
        TreeSet<Integer> eog = new TreeSet<>();
        for (List<String> fim : List.of(FIM_PAD_TEXTS, FIM_REPO_TEXTS, FIM_SEPARATOR_TEXTS)) {
            int id = find(idsByText, types, fim);
            if (id >= 0) {
                eog.add(id);
            }
        }
        for (String text : END_OF_GENERATION_TEXTS) {
            Integer id = idsByText.get(text);
            if (id != null) {
                eog.add(id);
                types[id] = TokenType.CONTROL;
            }
        }
        for (int id : new int[] {eos, eot, eom}) {
            if (id >= 0) {
                eog.add(id);
            }
        }
        return new SpecialTokens(bos, eos, eot, eom, padding, eog.stream().mapToInt(Integer::intValue).toArray());
    }

    /**
     * The token of the first of {@code candidates} in the vocabulary, made a control token; -1 if
     * none is. (llama.cpp takes whichever its hash map yields first: for Llama 3, which has both
     * {@code <|eot_id|>} and {@code <|end_of_text|>}, that choice is not specified.)
     */
    private static int find(Map<String, Integer> idsByText, TokenType[] types, List<String> candidates) {
        for (String candidate : candidates) {
            Integer id = idsByText.get(candidate);
            if (id != null) {
                types[id] = TokenType.CONTROL;
                return id;
            }
        }
        return -1;
    }

    boolean isEndOfGeneration(int id) {
        return id >= 0 && Arrays.binarySearch(endOfGeneration, id) >= 0;
    }
}
