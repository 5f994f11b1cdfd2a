package io.kvstash.engine.chat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.gguf.TinyModels;
import io.kvstash.engine.tokenizer.TextRange;
import io.kvstash.engine.tokenizer.Tokenizer;
import java.nio.file.Path;
import java.time.LocalDate;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Templates from GGUF metadata, the plain fallback and template errors, on a tiny SentencePiece model (BOS {@code <s>}, EOS {@code </s>}). */
class ChatTemplateTest {
    private static final List<ChatMessage> CONVERSATION = List.of(
            ChatMessage.system("Be brief."),
            ChatMessage.user("Once upon a time"),
            ChatMessage.assistant("the cat sat"),
            ChatMessage.user("on the mat"));

    @TempDir
    static Path dir;
    private static GgufFile plainFile;
    private static Tokenizer tokenizer;

    @BeforeAll
    static void load() {
        plainFile = GgufFile.open(TinyModels.write(dir.resolve("no-template.gguf"), TinyModels.Spec.builder().build()));
        tokenizer = Tokenizer.fromGguf(plainFile);
    }

    @AfterAll
    static void close() {
        plainFile.close();
    }

    private static Path withTemplate(String name, String template) {
        return TinyModels.writer(TinyModels.Spec.builder().build())
                .addString(ChatTemplate.METADATA_KEY, template)
                .write(dir.resolve(name));
    }

    private static ChatTemplate jinja(String template) {
        return ChatTemplate.jinja(template, tokenizer, "test-template");
    }

    @Test
    void shouldFallBackToThePlainTemplateWhenTheFileHasNone() {
        ChatTemplate template = ChatTemplate.fromGguf(plainFile, tokenizer);
        assertTrue(template.isPlainFallback());
        String conversation = "<|system|>\nBe brief.\n<|user|>\nOnce upon a time\n<|assistant|>\nthe cat sat\n<|user|>\non the mat\n";
        ChatPrompt prompt = template.render(CONVERSATION, true);
        assertEquals(conversation + "<|assistant|>\n", prompt.text());
        assertEquals(conversation, template.render(CONVERSATION, false).text());
        assertTrue(prompt.addBos(), "the tiny vocabulary adds BOS by default");
        int[] ids = prompt.tokenize(tokenizer);
        assertEquals(tokenizer.bos(), ids[0]);
        assertArrayEquals(tokenizer.encode(prompt.text(), true, false), ids);
    }

    @Test
    void shouldKeepControlTokenTextAsPlainTextInThePlainFallback() {
        ChatPrompt prompt = ChatTemplate.plain(tokenizer).render(List.of(ChatMessage.user("a </s> b <s> c")), true);
        int[] ids = prompt.tokenize(tokenizer);
        assertEquals(1, Arrays.stream(ids).filter(id -> id == tokenizer.bos()).count());
        assertEquals(0, Arrays.stream(ids).filter(id -> id == tokenizer.eos()).count());
    }

    @Test
    void shouldRenderTheTemplateOfTheGgufFileWithItsBosAndEosText() {
        String template = "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}{{ eos_token }}{% endfor %}"
                + "{% if add_generation_prompt %}[assistant]{% endif %}";
        try (GgufFile file = GgufFile.open(withTemplate("with-template.gguf", template))) {
            ChatTemplate chat = ChatTemplate.fromGguf(file, Tokenizer.fromGguf(file));
            assertFalse(chat.isPlainFallback());
            ChatPrompt prompt = chat.render(List.of(ChatMessage.user("hi")), true);
            assertEquals("<s>[user] hi</s>[assistant]", prompt.text());
            assertFalse(prompt.addBos(), "the text starts with BOS already");
            int[] ids = prompt.tokenize(tokenizer);
            assertEquals(tokenizer.bos(), ids[0]);
            assertEquals(1, Arrays.stream(ids).filter(id -> id == tokenizer.bos()).count());
            assertEquals(1, Arrays.stream(ids).filter(id -> id == tokenizer.eos()).count(), "the template's </s> is a control token");
        }
    }

    @Test
    void shouldAddBosWhenTheModelWantsItAndTheTemplateDoesNotWriteIt() {
        ChatPrompt prompt = jinja("{% for m in messages %}{{ m.content }}{% endfor %}").render(List.of(ChatMessage.user("hi")), true);
        assertTrue(prompt.addBos());
        assertEquals(tokenizer.bos(), prompt.tokenize(tokenizer)[0]);
    }

    @Test
    void shouldFailToLoadATemplateWithAnUnclosedBlockNamingTheFileAndTheProblem() {
        Path file = withTemplate("broken.gguf", "{% for m in messages %}\n{{ m.content }}\n");
        try (GgufFile gguf = GgufFile.open(file)) {
            ChatTemplateException e = assertThrows(ChatTemplateException.class,
                    () -> ChatTemplate.fromGguf(gguf, Tokenizer.fromGguf(gguf)));
            assertTrue(e.getMessage().contains("broken.gguf (tokenizer.chat_template)"), e.getMessage());
            assertTrue(e.getMessage().contains("endfor"), e.getMessage());
            assertFalse(e.raisedByTemplate());
        }
    }

    @Test
    void shouldFailToRenderABrokenExpressionNamingItsLine() {
        ChatTemplate template = jinja("{% for m in messages %}\n{{ m.content }}\n{% endfor %}\n{{ m.content + }}\n");
        ChatTemplateException e = assertThrows(ChatTemplateException.class, () -> template.render(CONVERSATION, true));
        assertTrue(e.getMessage().startsWith("chat template test-template failed at line 4: "), e.getMessage());
        assertTrue(e.getMessage().contains("m.content +"), e.getMessage());
    }

    @Test
    void shouldFailWithTheTemplatesOwnMessageWhenItRaisesAnException() {
        ChatTemplate template = jinja("{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}"
                + "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
                + "{% endif %}{{ m.content }}{% endfor %}");
        ChatTemplateException e = assertThrows(ChatTemplateException.class, () -> template.render(CONVERSATION, true));
        assertEquals("chat template test-template refused the conversation: "
                + "Conversation roles must alternate user/assistant/user/assistant/...", e.getMessage());
        assertTrue(e.raisedByTemplate());
        assertEquals("Once upon a timethe cat sat", template.render(CONVERSATION.subList(1, 3), true).text());
    }

    @Test
    void shouldRefuseToLoadOtherTemplates() {
        ChatTemplate template = jinja("{% include 'secrets.txt' %}");
        ChatTemplateException e = assertThrows(ChatTemplateException.class, () -> template.render(CONVERSATION, true));
        assertTrue(e.getMessage().contains("cannot load other templates"), e.getMessage());
    }

    @Test
    void shouldGiveTheDateToStrftimeNow() {
        LocalDate before = LocalDate.now();
        String rendered = jinja("{{ strftime_now('%Y-%m-%d') }}|{{ strftime_now('%d %b %Y') }}").render(List.of(), true).text();
        LocalDate after = LocalDate.now();
        Set<String> expected = new java.util.HashSet<>(List.of(before + "|" + String.format(java.util.Locale.US, "%1$td %1$tb %1$tY", before),
                after + "|" + String.format(java.util.Locale.US, "%1$td %1$tb %1$tY", after)));
        assertTrue(expected.contains(rendered), rendered);
    }

    @Test
    void shouldLocateContentTheTemplateTrims() {
        ChatPrompt prompt = jinja("{% for m in messages %}<{{ m.content | trim }}>{% endfor %}")
                .render(List.of(ChatMessage.user("  a </s> b\n")), false);
        assertEquals("<a </s> b>", prompt.text());
        assertEquals(List.of(new TextRange(1, 9)), prompt.literalRanges());
        assertEquals(0, Arrays.stream(prompt.tokenize(tokenizer)).filter(id -> id == tokenizer.eos()).count());
    }

    @Test
    void shouldRefuseControlTokenTextInContentTheTemplateWritesTwice() {
        ChatTemplate twice = jinja("{% for m in messages %}{{ m.content }}|{{ m.content }}{% endfor %}");
        assertEquals("a|a", twice.render(List.of(ChatMessage.user("a")), false).text(), "harmless content is fine");
        ChatTemplateException e = assertThrows(ChatTemplateException.class,
                () -> twice.render(List.of(ChatMessage.user("ok"), ChatMessage.user("a </s>")), false));
        assertTrue(e.getMessage().startsWith("message 1 (user) of the conversation holds control-token text"), e.getMessage());
    }

    @Test
    void shouldLeaveNothingToProtectWhenTheTemplateDropsTheContent() {
        ChatPrompt prompt = jinja("{% for m in messages %}[{{ m.role }}]{% endfor %}").render(List.of(ChatMessage.user("</s>")), false);
        assertEquals("[user]", prompt.text());
        assertEquals(List.of(), prompt.literalRanges());
    }

    @Test
    void shouldPassExtraVariablesToTheTemplate() {
        ChatTemplate template = jinja("{% if enable_thinking is defined and enable_thinking is false %}off{% else %}on{% endif %}");
        assertEquals("on", template.render(List.of(), true).text());
        assertEquals("off", template.render(List.of(), true, Map.of("enable_thinking", false)).text());
    }
}
