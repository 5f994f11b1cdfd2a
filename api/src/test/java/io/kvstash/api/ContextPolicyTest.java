package io.kvstash.api;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.core.ParameterizedTypeReference;
import org.springframework.http.MediaType;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.web.reactive.server.WebTestClient;

/**
 * Sessions past a small context length (128 positions, two 64-token chunks) with stories15M: one
 * application per {@code kvstash.sessions.context-policy}, in the subclasses.
 */
@DirtiesContext(classMode = DirtiesContext.ClassMode.AFTER_CLASS)
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
abstract class ContextPolicyTest {
    static final int CONTEXT = 128;
    static final String KEY = "k";
    static final ParameterizedTypeReference<Map<String, Object>> JSON = new ParameterizedTypeReference<>() {};
    static final String SYSTEM = "You tell short stories about animals.";
    static final List<String> QUESTIONS = List.of("Tell me about a cat who found a red ball in the garden.",
            "What did the dog do when it started to rain?", "Where did the little bird build its nest?",
            "Why was the rabbit happy on Sunday morning?", "Who helped the old horse cross the river?",
            "How did the fox and the duck become friends?");

    @LocalServerPort
    int port;
    WebTestClient client;

    @BeforeAll
    static void requireModel() {
        String dir = ServerTest.models();
        assumeTrue(dir != null && !dir.isBlank(), "KVSTASH_TEST_MODELS not set: skipping the context policy end-to-end tests");
        assumeTrue(Files.exists(Path.of(dir, ServerTest.MODEL)), Path.of(dir, ServerTest.MODEL) + " missing: skipping");
    }

    static void properties(DynamicPropertyRegistry r, String policy) {
        Path data = ServerTest.tempDir();
        r.add("kvstash.engine.model", () -> Path.of(ServerTest.models() == null ? "." : ServerTest.models(), ServerTest.MODEL).toString());
        r.add("kvstash.engine.threads", () -> "2");
        r.add("kvstash.engine.context-length", () -> Integer.toString(CONTEXT));
        r.add("kvstash.sessions.context-policy", () -> policy);
        r.add("kvstash.store.data-dir", data::toString);
        r.add("kvstash.kv.hot-capacity", () -> "64MB");
        r.add("kvstash.limits.max-body-size", () -> "4MB"); // an export carries the F32 tail
        r.add("kvstash.security.api-keys[0].key", () -> KEY);
        r.add("kvstash.security.api-keys[0].tenant", () -> "acme");
    }

    @BeforeEach
    void connect() {
        client = WebTestClient.bindToServer().baseUrl("http://localhost:" + port).responseTimeout(Duration.ofMinutes(1))
                .codecs(c -> c.defaultCodecs().maxInMemorySize(4 << 20)).build();
    }

    String createSession() {
        return (String) client.post().uri("/v1/sessions").header("Authorization", "Bearer " + KEY).contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"system_prompt\": \"" + SYSTEM + "\", \"defaults\": {\"temperature\": 0}}").exchange()
                .expectStatus().isCreated().expectBody(JSON).returnResult().getResponseBody().get("id");
    }

    WebTestClient.ResponseSpec say(String id, String content, int maxTokens) {
        return client.post().uri("/v1/sessions/" + id + "/messages").header("Authorization", "Bearer " + KEY)
                .contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"content\": \"" + content + "\", \"max_tokens\": " + maxTokens + "}").exchange();
    }

    Map<String, Object> view(String id) {
        return client.get().uri("/v1/sessions/" + id).header("Authorization", "Bearer " + KEY).exchange().expectStatus().isOk()
                .expectBody(JSON).returnResult().getResponseBody();
    }

    /**
     * Exports {@code id}, imports it (a new session of the same tenant), checks the import holds
     * the same conversation and the same dropped/shifted bookkeeping, and that it takes a turn.
     */
    Map<String, Object> exportImportAndContinue(String id) {
        Map<String, Object> doc = client.get().uri("/v1/sessions/" + id + "/export").header("Authorization", "Bearer " + KEY).exchange()
                .expectStatus().isOk().expectBody(JSON).returnResult().getResponseBody();
        Map<String, Object> imported = client.post().uri("/v1/sessions/import").header("Authorization", "Bearer " + KEY)
                .contentType(MediaType.APPLICATION_JSON).bodyValue(doc).exchange()
                .expectStatus().isCreated().expectBody(JSON).returnResult().getResponseBody();
        Map<String, Object> original = view(id);
        for (String field : List.of("messages", "token_count", "dropped_messages", "sink_tokens", "shifted_tokens")) {
            org.junit.jupiter.api.Assertions.assertEquals(original.get(field), imported.get(field), field + " of the imported session");
        }
        String copy = (String) imported.get("id");
        say(copy, "What happened next?", 20).expectStatus().isOk();
        Map<String, Object> after = view(copy);
        org.junit.jupiter.api.Assertions.assertEquals(messages(original).size() + 2, messages(after).size(), "the import continues");
        return after;
    }

    @SuppressWarnings("unchecked")
    static List<Map<String, Object>> messages(Map<String, Object> view) {
        return (List<Map<String, Object>>) view.get("messages");
    }

    @SuppressWarnings("unchecked")
    static int usage(Map<String, Object> turn, String field) {
        return ((Number) ((Map<String, Object>) turn.get("usage")).get(field)).intValue();
    }

    static int number(Map<String, Object> m, String field) {
        return ((Number) m.get(field)).intValue();
    }
}
