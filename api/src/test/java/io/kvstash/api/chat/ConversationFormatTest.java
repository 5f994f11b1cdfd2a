package io.kvstash.api.chat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.kvstash.engine.chat.ChatMessage;
import io.kvstash.engine.chat.ChatTemplate;
import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.tokenizer.Tokenizer;
import io.kvstash.offload.SessionRecord;
import io.kvstash.offload.SessionRecord.Message;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A session built turn by turn (system prompt, user message, the reply as the model generates it
 * ending on its end-of-turn token, another user message) holds exactly the tokens of the whole
 * conversation rendered at once by the model's template, on the real Qwen2 and Llama 3
 * vocabularies and templates; so does a session whose reply was cut off (no end-of-turn token),
 * and user text that looks like a control token stays text.
 */
class ConversationFormatTest {

    private static Path vocab(String name) {
        String dir = System.getenv("KVSTASH_TEST_MODELS");
        assumeTrue(dir != null && !dir.isBlank(), "KVSTASH_TEST_MODELS not set: skipping the chat-template conversation test");
        Path p = Path.of(dir, name);
        assumeTrue(Files.exists(p), p + " missing: skipping");
        return p;
    }

    private static SessionRecord record(int[] tokens, List<Message> messages) {
        return new SessionRecord("s", "t", 0, 0, 0, tokens, 0, List.of(), null, messages);
    }

    private static int[] concat(int[]... parts) {
        int n = 0;
        for (int[] p : parts) {
            n += p.length;
        }
        int[] out = new int[n];
        int at = 0;
        for (int[] p : parts) {
            System.arraycopy(p, 0, out, at, p.length);
            at += p.length;
        }
        return out;
    }

    private static String pieces(Tokenizer tokenizer, int[] ids) {
        StringBuilder b = new StringBuilder();
        for (int id : ids) {
            b.append('[').append(tokenizer.piece(id)).append(']');
        }
        return b.toString();
    }

    private static int endOfTurn(Tokenizer tokenizer, String text) {
        int[] ids = tokenizer.encode(text, false, true);
        assertEquals(1, ids.length, text + " is one control token");
        return ids[0];
    }

    @ParameterizedTest
    @ValueSource(strings = {"ggml-vocab-qwen2.gguf|<|im_end|>", "ggml-vocab-llama3.gguf|<|eot_id|>"})
    void shouldAppendExactlyWhatTheTemplateWritesForTheWholeConversation(String spec) {
        String[] parts = spec.split("\\|", 2);
        try (GgufFile f = GgufFile.open(vocab(parts[0]))) {
            Tokenizer tokenizer = Tokenizer.fromGguf(f);
            ChatTemplate template = ChatTemplate.fromGguf(f, tokenizer);
            assertFalse(template.isPlainFallback(), parts[0] + " has a chat template");
            ConversationFormat format = new ConversationFormat(tokenizer, Optional.of(template));
            int eot = endOfTurn(tokenizer, parts[1]);

            List<Message> messages = new ArrayList<>(List.of(new Message("system", "You are terse.")));
            int[] held = format.opening(messages);

            List<Message> turn1 = List.of(new Message("user", "Name a colour. <|im_start|> is not a marker here."));
            held = concat(held, format.continuation(record(held, messages), turn1));
            messages.addAll(turn1);
            String reply = "Blue, like the sea.";
            held = concat(held, tokenizer.encode(reply, false, false), new int[] {eot});
            messages.add(new Message("assistant", reply));

            List<Message> turn2 = List.of(new Message("user", "And another?"));
            held = concat(held, format.continuation(record(held, messages), turn2));
            messages.addAll(turn2);

            int[] whole = template.render(messages.stream().map(m -> new ChatMessage(m.role(), m.content())).toList(), true)
                    .tokenize(tokenizer);
            int[] built = held;
            assertArrayEquals(whole, built, () -> "turn by turn:\n" + pieces(tokenizer, built) + "\nat once:\n" + pieces(tokenizer, whole));
            assertArrayEquals(whole, format.prompt(messages));
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"ggml-vocab-qwen2.gguf", "ggml-vocab-llama3.gguf"})
    void shouldCloseAReplyThatWasCutOffBeforeItsEndOfTurnToken(String name) {
        try (GgufFile f = GgufFile.open(vocab(name))) {
            Tokenizer tokenizer = Tokenizer.fromGguf(f);
            ChatTemplate template = ChatTemplate.fromGguf(f, tokenizer);
            ConversationFormat format = new ConversationFormat(tokenizer, Optional.of(template));
            List<Message> messages = new ArrayList<>(List.of(new Message("user", "Count.")));
            int[] held = format.continuation(record(new int[0], List.of()), messages);
            String reply = "One two three";
            held = concat(held, tokenizer.encode(reply, false, false));
            messages.add(new Message("assistant", reply));
            List<Message> next = List.of(new Message("user", "Go on."));
            int[] added = format.continuation(record(held, messages), next);
            messages.addAll(next);
            int[] whole = template.render(messages.stream().map(m -> new ChatMessage(m.role(), m.content())).toList(), true)
                    .tokenize(tokenizer);
            int[] all = concat(held, added);
            assertArrayEquals(whole, all, () -> "turn by turn:\n" + pieces(tokenizer, all) + "\nat once:\n" + pieces(tokenizer, whole));
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"stories15M-q8_0.gguf"})
    void shouldSeparateTheFirstMessageAfterATextPrefixInThePlainFormat(String name) {
        try (GgufFile f = GgufFile.open(vocab(name))) {
            Tokenizer tokenizer = Tokenizer.fromGguf(f);
            ConversationFormat format = new ConversationFormat(tokenizer, Optional.empty());
            int[] prefix = tokenizer.encode("Once upon a time", true, false);
            int[] added = format.continuation(record(prefix, List.of()), List.of(new Message("user", "Go on.")));
            assertEquals("\n\nUser: Go on.\n\nAssistant:", tokenizer.decode(concat(new int[] {tokenizer.bos()}, added)).substring(1),
                    Arrays.toString(added));
        }
    }
}
