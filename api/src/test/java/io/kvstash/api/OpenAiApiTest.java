package io.kvstash.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.springframework.core.ParameterizedTypeReference;
import org.springframework.http.MediaType;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/** The OpenAI-compatible endpoints: response and chunk shapes, usage, prefix reuse, sessions, errors. */
class OpenAiApiTest extends ServerTest {
    static final ParameterizedTypeReference<Map<String, Object>> JSON = new ParameterizedTypeReference<>() {};
    static final JsonMapper MAPPER = JsonMapper.builder().build();

    static String chat(String user, int maxTokens, String extra) {
        return "{\"model\": \"stories15M-q8_0\", \"messages\": [{\"role\": \"system\", \"content\": \"" + STORY.replace("\"", "\\\"")
                + "\"}, {\"role\": \"user\", \"content\": \"" + user + "\"}], \"max_tokens\": " + maxTokens + ", \"temperature\": 0" + extra + "}";
    }

    JsonNode completion(String body, String key) {
        byte[] bytes = post("/v1/chat/completions", key).contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                .expectStatus().isOk().expectHeader().contentTypeCompatibleWith(MediaType.APPLICATION_JSON)
                .expectBody().returnResult().getResponseBody();
        return MAPPER.readTree(bytes);
    }

    @Test
    void shouldAnswerAChatCompletionInOpenAisShapeAndReuseTheCachedPrefixNextTime() {
        JsonNode first = completion(chat("What happened next?", 6, ""), ACME);
        assertTrue(first.get("id").asString().startsWith("chatcmpl-"));
        assertEquals("chat.completion", first.get("object").asString());
        assertEquals("stories15M-q8_0", first.get("model").asString());
        JsonNode choice = first.get("choices").get(0);
        assertEquals(0, choice.get("index").asInt());
        assertEquals("assistant", choice.get("message").get("role").asString());
        assertTrue(choice.get("message").get("content").asString().length() > 0);
        assertEquals("length", choice.get("finish_reason").asString());
        JsonNode usage = first.get("usage");
        assertEquals(6, usage.get("completion_tokens").asInt());
        assertEquals(usage.get("prompt_tokens").asInt() + 6, usage.get("total_tokens").asInt());

        // Same system prompt, another question: its full chunks come from the tiers.
        JsonNode second = completion(chat("Who was the dog?", 3, ""), ACME);
        int cached = second.get("usage").get("prompt_tokens_details").get("cached_tokens").asInt();
        assertTrue(cached >= 64 && cached % 64 == 0, "cached whole chunks of the shared prefix: " + second.get("usage"));
        // Never across tenants.
        JsonNode other = completion(chat("Who was the dog?", 3, ""), GLOBEX);
        assertEquals(0, other.get("usage").get("prompt_tokens_details").get("cached_tokens").asInt());
        // Greedy is deterministic, from cache or not.
        assertEquals(second.get("choices").get(0).get("message").get("content"), other.get("choices").get(0).get("message").get("content"));
    }

    @Test
    void shouldStreamOpenAiChunksWithUsageAndDone() {
        List<String> lines = post("/v1/chat/completions", ACME).contentType(MediaType.APPLICATION_JSON)
                .bodyValue(chat("Go on.", 5, ", \"stream\": true, \"stream_options\": {\"include_usage\": true}"))
                .exchange().expectStatus().isOk().expectHeader().contentTypeCompatibleWith(MediaType.TEXT_EVENT_STREAM)
                .returnResult(String.class).getResponseBody().collectList().block(Duration.ofMinutes(1));
        assertEquals("[DONE]", lines.getLast());
        List<JsonNode> chunks = lines.subList(0, lines.size() - 1).stream().map(MAPPER::readTree).toList();
        assertTrue(chunks.stream().allMatch(c -> c.get("object").asString().equals("chat.completion.chunk")));
        assertEquals(1, chunks.stream().map(c -> c.get("id").asString()).distinct().count(), "one id for the whole stream");
        assertEquals("assistant", chunks.getFirst().get("choices").get(0).get("delta").get("role").asString());
        JsonNode usageChunk = chunks.getLast();
        assertEquals(0, usageChunk.get("choices").size());
        assertEquals(5, usageChunk.get("usage").get("completion_tokens").asInt());
        JsonNode finish = chunks.get(chunks.size() - 2).get("choices").get(0);
        assertEquals("length", finish.get("finish_reason").asString());
        StringBuilder text = new StringBuilder();
        for (JsonNode c : chunks.subList(1, chunks.size() - 2)) {
            assertTrue(c.get("choices").get(0).get("finish_reason").isNull());
            text.append(c.get("choices").get(0).get("delta").get("content").asString());
        }
        JsonNode json = completion(chat("Go on.", 5, ""), ACME);
        assertEquals(json.get("choices").get(0).get("message").get("content").asString(), text.toString(), "greedy: same text streamed or not");
    }

    @Test
    void shouldContinueASessionNamedInTheHeaderOrTheBody() {
        Map<String, Object> s = post("/v1/sessions", ACME).contentType(MediaType.APPLICATION_JSON).bodyValue("{}").exchange()
                .expectStatus().isCreated().expectBody(JSON).returnResult().getResponseBody();
        String id = (String) s.get("id");
        String first = "{\"messages\": [{\"role\": \"user\", \"content\": \"" + STORY.replace("\"", "\\\"") + "\"}], \"max_tokens\": 4, \"temperature\": 0}";
        JsonNode a = MAPPER.readTree(post("/v1/chat/completions", ACME).header("X-Session-Id", id).contentType(MediaType.APPLICATION_JSON)
                .bodyValue(first).exchange().expectStatus().isOk().expectBody().returnResult().getResponseBody());
        assertEquals(id, a.get("session_id").asString());
        JsonNode b = completion("{\"session_id\": \"" + id + "\", \"messages\": [{\"role\": \"user\", \"content\": \"More.\"}], \"max_tokens\": 2}", ACME);
        int before = a.get("usage").get("total_tokens").asInt();
        assertTrue(b.get("usage").get("prompt_tokens_details").get("cached_tokens").asInt() >= before - 1, b.get("usage").toString());
        get("/v1/sessions/" + id, ACME).exchange().expectBody().jsonPath("$.messages.length()").isEqualTo(4);
        // Another tenant cannot continue it.
        post("/v1/chat/completions", GLOBEX).header("X-Session-Id", id).contentType(MediaType.APPLICATION_JSON).bodyValue(first).exchange()
                .expectStatus().isNotFound().expectBody().jsonPath("$.error.code").isEqualTo("session_not_found");
    }

    @Test
    void shouldServeModelsAndTextCompletions() {
        get("/v1/models", ACME).exchange().expectStatus().isOk().expectBody()
                .jsonPath("$.object").isEqualTo("list").jsonPath("$.data[0].id").isEqualTo("stories15M-q8_0");
        JsonNode c = MAPPER.readTree(post("/v1/completions", ACME).contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"prompt\": \"Once upon a time\", \"max_tokens\": 30, \"temperature\": 0, \"stop\": [\".\"]}")
                .exchange().expectStatus().isOk().expectBody().returnResult().getResponseBody());
        assertEquals("text_completion", c.get("object").asString());
        JsonNode choice = c.get("choices").get(0);
        assertEquals("stop", choice.get("finish_reason").asString(), "the stop sequence ended it: " + c);
        assertTrue(!choice.get("text").asString().contains("."), choice.get("text").asString());
        assertTrue(c.get("usage").get("completion_tokens").asInt() < 30);
    }

    @Test
    void shouldAnswerErrorsInOpenAisEnvelope() {
        post("/v1/chat/completions", ACME).contentType(MediaType.APPLICATION_JSON).bodyValue("{\"messages\": [}").exchange()
                .expectStatus().isBadRequest().expectBody()
                .jsonPath("$.error.type").isEqualTo("invalid_request_error").jsonPath("$.error.code").isEqualTo("malformed_request");
        post("/v1/chat/completions", ACME).contentType(MediaType.APPLICATION_JSON).bodyValue("{\"messages\": []}").exchange()
                .expectStatus().isBadRequest().expectBody().jsonPath("$.error.param").isEqualTo("messages");
        post("/v1/chat/completions", ACME).contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_completion_tokens\": 100000}").exchange()
                .expectStatus().isBadRequest().expectBody().jsonPath("$.error.param").isEqualTo("max_completion_tokens");
        post("/v1/chat/completions", ACME).contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"messages\": [{\"role\": \"wizard\", \"content\": \"x\"}]}").exchange()
                .expectStatus().isBadRequest().expectBody().jsonPath("$.error.param").isEqualTo("messages[0].role");
        post("/v1/chat/completions", ACME).contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"session_id\": \"nope\"}").exchange()
                .expectStatus().isNotFound().expectBody().jsonPath("$.error.code").isEqualTo("session_not_found");
        get("/v1/models/gpt-4", ACME).exchange().expectStatus().isNotFound().expectBody().jsonPath("$.error.code").isEqualTo("model_not_found");
    }
}
