package io.kvstash.api.chat;

import io.kvstash.offload.SessionRecord.Message;
import java.util.List;
import java.util.Locale;

/**
 * The conversation format for models without a chat template (the test models have none). A
 * conversation is BOS followed by its messages, each written as {@code "Role: content"} and
 * separated by a blank line; a turn's prompt ends with {@code "\n\nAssistant:"}, and the model's
 * reply follows it. Roles are capitalised ({@code system} → {@code System}, {@code user} →
 * {@code User}, {@code assistant} → {@code Assistant}). For example:
 *
 * <pre>
 * System: You tell short stories.
 *
 * User: A story about a cat, please.
 *
 * Assistant: Once upon a time, there was a cat ...
 *
 * User: And a dog?
 *
 * Assistant:
 * </pre>
 *
 * <p>A session stores tokens, not text: each turn appends only the text of the new messages (with
 * the separator that precedes them), so the cached KV of everything before stays valid.
 */
public final class PlainChatTemplate {
    static final String SEPARATOR = "\n\n";
    static final String REPLY_CUE = "Assistant:";

    private PlainChatTemplate() {
    }

    /**
     * The text that extends a conversation of {@code previousMessages} messages by {@code added},
     * ending with the reply cue when {@code cueReply}. The first message of a conversation has no
     * separator before it.
     */
    public static String continuation(int previousMessages, List<Message> added, boolean cueReply) {
        StringBuilder out = new StringBuilder();
        for (Message m : added) {
            if (previousMessages > 0 || !out.isEmpty()) {
                out.append(SEPARATOR);
            }
            out.append(roleName(m.role())).append(": ").append(m.content());
        }
        if (cueReply) {
            if (previousMessages > 0 || !out.isEmpty()) {
                out.append(SEPARATOR);
            }
            out.append(REPLY_CUE);
        }
        return out.toString();
    }

    /** A whole conversation followed by the reply cue (e.g. an OpenAI request's {@code messages}). */
    public static String prompt(List<Message> messages) {
        return continuation(0, messages, true);
    }

    static String roleName(String role) {
        if (role.isEmpty()) {
            return role;
        }
        return role.substring(0, 1).toUpperCase(Locale.ROOT) + role.substring(1);
    }
}
