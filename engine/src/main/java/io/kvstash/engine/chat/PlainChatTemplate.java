package io.kvstash.engine.chat;

import io.kvstash.engine.tokenizer.TextRange;
import io.kvstash.engine.tokenizer.Tokenizer;

import java.util.List;
import java.util.Map;

/** See {@link ChatTemplate#plain}. */
final class PlainChatTemplate implements ChatTemplate {
    private final boolean addBos;

    PlainChatTemplate(Tokenizer tokenizer) {
        this.addBos = tokenizer.addBosByDefault();
    }

    @Override
    public ChatPrompt render(List<ChatMessage> messages, boolean addGenerationPrompt, Map<String, ?> variables) {
        StringBuilder text = new StringBuilder();
        for (ChatMessage message : messages) {
            text.append("<|").append(message.role()).append("|>\n").append(message.content()).append('\n');
        }
        if (addGenerationPrompt) {
            text.append("<|assistant|>\n");
        }
        // All of it literal: the markers are not tokens, and no message may write one either.
        return new ChatPrompt(text.toString(), addBos, List.of(new TextRange(0, text.length())));
    }

    @Override
    public boolean isPlainFallback() {
        return true;
    }
}
