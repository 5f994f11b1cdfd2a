package io.kvstash.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;
import io.kvstash.engine.chat.ChatMessage;
import io.kvstash.engine.chat.ChatTemplate;
import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.tokenizer.Tokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.http.MediaType;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.test.web.reactive.server.WebTestClient;

/**
 * A model whose GGUF carries a chat template (the synthetic Qwen2 model, with Qwen's real
 * vocabulary and template): /v1/chat/completions renders the messages with it, exactly as the
 * engine's {@link ChatTemplate} does (whose output is checked against Hugging Face's in the
 * engine's tests), so the prompt has the tokens of that rendering.
 */
@DirtiesContext(classMode = DirtiesContext.ClassMode.AFTER_CLASS)
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class ModelChatTemplateTest {
    static final String MODEL = "synth-qwen2.gguf";
    static final Path DATA = ServerTest.tempDir();

    @LocalServerPort
    int port;

    @BeforeAll
    static void requireModel() {
        String dir = ServerTest.models();
        assumeTrue(dir != null && !dir.isBlank(), "KVSTASH_TEST_MODELS not set: skipping the chat-template end-to-end test");
        assumeTrue(Files.exists(Path.of(dir, MODEL)), Path.of(dir, MODEL) + " missing: skipping");
    }

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry r) {
        r.add("kvstash.engine.model", () -> Path.of(ServerTest.models() == null ? "." : ServerTest.models(), MODEL).toString());
        r.add("kvstash.engine.threads", () -> "2");
        r.add("kvstash.engine.context-length", () -> "512");
        r.add("kvstash.store.data-dir", () -> DATA.toString());
        r.add("kvstash.kv.hot-capacity", () -> "64MB");
        r.add("kvstash.security.api-keys[0].key", () -> "k");
        r.add("kvstash.security.api-keys[0].tenant", () -> "acme");
    }

    @Test
    void shouldRenderChatCompletionsWithTheModelsOwnTemplate() throws Exception {
        List<ChatMessage> conversation = List.of(ChatMessage.system("You are terse."), ChatMessage.user("Name a colour."));
        int expected;
        try (GgufFile f = GgufFile.open(Path.of(ServerTest.models(), MODEL))) {
            Tokenizer tokenizer = Tokenizer.fromGguf(f);
            expected = ChatTemplate.fromGguf(f, tokenizer).render(conversation, true).tokenize(tokenizer).length;
        }
        WebTestClient client = WebTestClient.bindToServer().baseUrl("http://localhost:" + port).responseTimeout(Duration.ofMinutes(1)).build();
        String body = client.post().uri("/v1/chat/completions").header("Authorization", "Bearer k").contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"messages\": [{\"role\": \"system\", \"content\": \"You are terse.\"}, {\"role\": \"user\", \"content\": \"Name a colour.\"}],"
                        + " \"max_tokens\": 3, \"temperature\": 0}")
                .exchange().expectStatus().isOk().expectBody(String.class).returnResult().getResponseBody();
        JsonNode usage = JsonMapper.builder().build().readTree(body).get("usage");
        assertEquals(expected, usage.get("prompt_tokens").asInt(), "prompt tokens of the template's rendering: " + body);
    }
}
