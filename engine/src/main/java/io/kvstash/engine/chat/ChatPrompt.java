package io.kvstash.engine.chat;

import io.kvstash.engine.tokenizer.TextRange;
import io.kvstash.engine.tokenizer.Tokenizer;

import java.util.List;
import java.util.Objects;

/**
 * A rendered conversation and how to tokenize it.
 *
 * @param text          what the template produced
 * @param addBos        whether the tokenizer must put BOS in front: true when the model wants BOS
 *                      ({@link Tokenizer#addBosByDefault()}) and the text does not already begin with
 *                      the BOS token's text (the Llama 3 template writes {@code bos_token} itself)
 * @param literalRanges where in {@code text} message content that holds control-token text (say a
 *                      user who typed {@code <|eot_id|>}) ended up: there it is tokenized as plain text,
 *                      everywhere else control-token text becomes control tokens. Empty when no message
 *                      holds such text; for the plain fallback template, the whole text.
 */
public record ChatPrompt(String text, boolean addBos, List<TextRange> literalRanges) {
    public ChatPrompt {
        Objects.requireNonNull(text, "text");
        literalRanges = List.copyOf(literalRanges);
    }

    /** The prompt's token ids: BOS if {@link #addBos()}, the template's markers as control tokens, message content as text. */
    public int[] tokenize(Tokenizer tokenizer) {
        return tokenizer.encode(text, addBos, literalRanges);
    }
}
