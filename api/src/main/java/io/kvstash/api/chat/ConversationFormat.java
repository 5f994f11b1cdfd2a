package io.kvstash.api.chat;

import io.kvstash.engine.chat.ChatMessage;
import io.kvstash.engine.chat.ChatPrompt;
import io.kvstash.engine.chat.ChatTemplate;
import io.kvstash.engine.tokenizer.TextRange;
import io.kvstash.engine.tokenizer.Tokenizer;
import io.kvstash.offload.SessionRecord;
import io.kvstash.offload.SessionRecord.Message;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * How a conversation becomes tokens: with the model's own chat template when its GGUF has one,
 * else with the {@link PlainChatTemplate plain format}.
 *
 * <p>A session stores tokens, and each turn may only append to them (the KV of what is stored
 * stays valid). With a model template a turn therefore renders the whole conversation, as
 * Hugging Face's {@code apply_chat_template} would, and appends the part of that text past what
 * the session already holds: the text of the stored tokens is the conversation up to the last
 * reply's generation prompt followed by the reply as generated, then the end-of-turn token the
 * model stopped on (which the template writes too, so it is not repeated). Where a template
 * rewrites earlier text (some trim replies), the appended part starts where the two texts first
 * differ; the stored messages stay exactly as written either way. The opening of a conversation
 * (a system prompt, a shared prefix) is written as every longer conversation starts, so that it is
 * a prefix of every later rendering.
 */
public final class ConversationFormat {
    private static final String SENTINEL = "\u2063kvstash\u2063";
    private final Tokenizer tokenizer;
    private final ChatTemplate template;

    /** {@code template}: the model's own chat template; empty for the plain format. */
    public ConversationFormat(Tokenizer tokenizer, Optional<ChatTemplate> template) {
        this.tokenizer = tokenizer;
        this.template = template.orElse(null);
    }

    /** Whether the model's own template is used. */
    public boolean usesModelTemplate() {
        return template != null;
    }

    /** A whole conversation ending with the cue for the assistant's reply (a one-off chat completion's prompt). */
    public int[] prompt(List<Message> messages) {
        if (template == null) {
            return tokenizer.encode(PlainChatTemplate.prompt(messages), tokenizer.addBosByDefault(), false);
        }
        return template.render(chat(messages), true).tokenize(tokenizer);
    }

    /** The opening messages of a conversation (a system prompt, a shared prefix) without a reply cue. */
    public int[] opening(List<Message> messages) {
        if (template == null) {
            return tokenizer.encode(PlainChatTemplate.continuation(0, messages, false), tokenizer.addBosByDefault(), false);
        }
        ChatPrompt p = template.render(chat(messages), false);
        return prefix(p, openingLength(messages, p.text())).tokenize(tokenizer);
    }

    /**
     * How much of {@code rendered} (the template's text of {@code messages} alone) every longer
     * conversation starts with: some templates close a conversation with text they would not write
     * before a next message (an assistant header even without the generation prompt, say), and a
     * session can only append.
     */
    private int openingLength(List<Message> messages, String rendered) {
        List<Message> longer = new ArrayList<>(messages);
        longer.add(new Message(messages.getLast().role().equals("user") ? "assistant" : "user", SENTINEL));
        return commonPrefix(rendered, template.render(chat(longer), false).text());
    }

    /** The tokens that extend session {@code r} by {@code added} and cue the assistant's reply. */
    public int[] continuation(SessionRecord r, List<Message> added) {
        int[] stored = r.tokens();
        // The messages the tokens stand for (a truncated session no longer holds its oldest turns).
        List<Message> held = r.heldMessages();
        if (template == null) {
            // A session that starts from a text prefix has tokens but no messages: still separate.
            int previous = held.isEmpty() && stored.length > 0 ? 1 : held.size();
            String text = PlainChatTemplate.continuation(previous, added, true);
            return tokenizer.encode(text, stored.length == 0 && tokenizer.addBosByDefault(), false);
        }
        List<Message> all = new ArrayList<>(held);
        all.addAll(added);
        ChatPrompt full = template.render(chat(all), true);
        if (stored.length == 0) {
            return full.tokenize(tokenizer);
        }
        String heldText = heldText(held);
        int from = commonPrefix(heldText, full.text());
        if (from == heldText.length() && tokenizer.isEndOfGeneration(stored[stored.length - 1])) {
            // The reply ended on its end-of-turn token, which is in the KV already and in the template's text next.
            String piece = tokenizer.piece(stored[stored.length - 1]);
            if (full.text().startsWith(piece, from)) {
                from += piece.length();
            }
        }
        return suffix(full, from).tokenize(tokenizer);
    }

    /** The text a session's stored tokens stand for (end-of-turn token excluded), as this template writes it. */
    private String heldText(List<Message> messages) {
        if (messages.isEmpty()) {
            return "";
        }
        Message last = messages.getLast();
        if (last.role().equals("assistant")) {
            return template.render(chat(messages.subList(0, messages.size() - 1)), true).text() + last.content();
        }
        String rendered = template.render(chat(messages), false).text();
        return rendered.substring(0, openingLength(messages, rendered));
    }

    private static int commonPrefix(String a, String b) {
        int n = Math.min(a.length(), b.length());
        int i = 0;
        while (i < n && a.charAt(i) == b.charAt(i)) {
            i++;
        }
        // Never split a surrogate pair.
        if (i > 0 && i < b.length() && Character.isLowSurrogate(b.charAt(i)) && Character.isHighSurrogate(b.charAt(i - 1))) {
            i--;
        }
        return i;
    }

    /** {@code p}'s text from {@code from} on, its literal ranges moved along, without BOS. */
    static ChatPrompt suffix(ChatPrompt p, int from) {
        List<TextRange> ranges = new ArrayList<>();
        for (TextRange t : p.literalRanges()) {
            if (t.end() > from) {
                ranges.add(new TextRange(Math.max(t.start(), from) - from, t.end() - from));
            }
        }
        return new ChatPrompt(p.text().substring(from), from == 0 && p.addBos(), ranges);
    }

    /** {@code p}'s first {@code length} characters, with its literal ranges cut there. */
    static ChatPrompt prefix(ChatPrompt p, int length) {
        List<TextRange> ranges = new ArrayList<>();
        for (TextRange t : p.literalRanges()) {
            if (t.start() < length) {
                ranges.add(new TextRange(t.start(), Math.min(t.end(), length)));
            }
        }
        return new ChatPrompt(p.text().substring(0, length), p.addBos(), ranges);
    }

    private static List<ChatMessage> chat(List<Message> messages) {
        return messages.stream().map(m -> new ChatMessage(m.role(), m.content())).toList();
    }
}
