package io.kvstash.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.springframework.core.ParameterizedTypeReference;
import org.springframework.http.MediaType;

/**
 * Shared prefixes end to end: a registered prefix is prefilled once and pinned; a session made
 * from it and a chat completion that starts with it reuse its KV and answer exactly as a
 * computation from scratch does; it is the registering tenant's alone; deleting it leaves the
 * sessions made from it intact.
 */
class PrefixApiTest extends ServerTest {
    static final ParameterizedTypeReference<Map<String, Object>> JSON = new ParameterizedTypeReference<>() {};
    static final String SYSTEM = "You only tell stories about a dog named Max. " + STORY;

    static String quoted(String s) {
        return "\"" + s.replace("\"", "\\\"") + "\"";
    }

    Map<String, Object> created(String path, String key, String body) {
        return post(path, key).contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                .expectStatus().isCreated().expectBody(JSON).returnResult().getResponseBody();
    }

    Map<String, Object> ok(String path, String key, String body) {
        return post(path, key).contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                .expectStatus().isOk().expectBody(JSON).returnResult().getResponseBody();
    }

    @Test
    void shouldReuseAPinnedPrefixInSessionsAndChatCompletionsWithTheSameReplies() {
        Map<String, Object> prefix = created("/v1/prefixes", ACME,
                "{\"name\": \"max\", \"messages\": [{\"role\": \"system\", \"content\": " + quoted(SYSTEM) + "}]}");
        String id = (String) prefix.get("id");
        int tokens = SessionApiTest.intOf(prefix, "token_count");
        int pinned = SessionApiTest.intOf(prefix, "pinned_chunks");
        assertTrue(tokens > 64, "the prefix spans a full chunk: " + prefix);
        assertEquals(tokens / 64, pinned, "every full chunk is pinned: " + prefix);
        assertEquals("hot", SessionApiTest.map(prefix.get("residency")).get("tier"));
        assertEquals("max", prefix.get("name"));

        // A session from the prefix, and the same conversation computed from scratch by another tenant.
        Map<String, Object> session = created("/v1/sessions", ACME, "{\"prefix_id\": \"" + id + "\", \"defaults\": {\"temperature\": 0}}");
        assertEquals(List.of(Map.of("role", "system", "content", SYSTEM)), session.get("messages"));
        assertEquals(tokens, SessionApiTest.intOf(session, "token_count"));
        String turn = "{\"content\": \"What did Max find?\", \"max_tokens\": 24}";
        Map<String, Object> reused = ok("/v1/sessions/" + session.get("id") + "/messages", ACME, turn);
        assertTrue(SessionApiTest.intOf(reused, "usage", "cached_tokens") >= tokens - 1,
                "the turn resumes every position of the prefix: " + reused.get("usage"));

        Map<String, Object> scratch = created("/v1/sessions", GLOBEX,
                "{\"system_prompt\": " + quoted(SYSTEM) + ", \"defaults\": {\"temperature\": 0}}");
        Map<String, Object> computed = ok("/v1/sessions/" + scratch.get("id") + "/messages", GLOBEX, turn);
        assertEquals(SessionApiTest.map(computed.get("message")).get("content"), SessionApiTest.map(reused.get("message")).get("content"),
                "reusing the prefix answers exactly as computing it");
        assertEquals(SessionApiTest.intOf(computed, "usage", "prompt_tokens"), SessionApiTest.intOf(reused, "usage", "prompt_tokens"));

        // A chat completion that starts with the prefix's messages, without a session.
        String chat = "{\"messages\": [{\"role\": \"system\", \"content\": " + quoted(SYSTEM) + "}, {\"role\": \"user\", \"content\": "
                + "\"Where did Max sleep?\"}], \"max_tokens\": 8, \"temperature\": 0}";
        Map<String, Object> completion = ok("/v1/chat/completions", ACME, chat);
        int cached = SessionApiTest.intOf(completion, "usage", "prompt_tokens_details", "cached_tokens");
        assertTrue(cached >= tokens - 1, "the completion resumes the prefix: " + completion.get("usage"));
        Map<String, Object> other = ok("/v1/chat/completions", GLOBEX, chat);
        assertEquals(SessionApiTest.map(SessionApiTest.map(((List<?>) other.get("choices")).getFirst()).get("message")).get("content"),
                SessionApiTest.map(SessionApiTest.map(((List<?>) completion.get("choices")).getFirst()).get("message")).get("content"));

        String metrics = get("/actuator/prometheus", ACME).exchange().expectStatus().isOk().expectBody(String.class).returnResult()
                .getResponseBody();
        assertTrue(metrics.lines().anyMatch(l -> l.startsWith("kvstash_prefix_reused_tokens_total") && !l.endsWith(" 0.0")),
                "prefix reuse is counted");
        for (String meter : List.of("kvstash_scheduler_running", "kvstash_scheduler_queue", "kvstash_prefix_pinned_bytes", "kvstash_prefixes",
                "kvstash_turn_first_token_seconds", "kvstash_tier_lookups_total", "kvstash_tier_evictions_total")) {
            assertTrue(metrics.contains(meter), meter + " is exported");
        }

        // Listing and tenancy.
        List<?> mine = (List<?>) get("/v1/prefixes", ACME).exchange().expectStatus().isOk().expectBody(JSON).returnResult()
                .getResponseBody().get("data");
        assertTrue(mine.stream().anyMatch(p -> id.equals(SessionApiTest.map(p).get("id"))));
        List<?> theirs = (List<?>) get("/v1/prefixes", GLOBEX).exchange().expectStatus().isOk().expectBody(JSON).returnResult()
                .getResponseBody().get("data");
        assertFalse(theirs.stream().anyMatch(p -> id.equals(SessionApiTest.map(p).get("id"))));
        get("/v1/prefixes/" + id, GLOBEX).exchange().expectStatus().isNotFound()
                .expectHeader().contentTypeCompatibleWith(MediaType.APPLICATION_PROBLEM_JSON)
                .expectBody().jsonPath("$.type").isEqualTo("https://kvstash.io/problems/unknown-prefix");
        post("/v1/sessions", GLOBEX).contentType(MediaType.APPLICATION_JSON).bodyValue("{\"prefix_id\": \"" + id + "\"}").exchange()
                .expectStatus().isNotFound();
        client.delete().uri("/v1/prefixes/" + id).header("Authorization", "Bearer " + GLOBEX).exchange().expectStatus().isNotFound();

        // Deleting it: gone for good, the session made from it carries on.
        client.delete().uri("/v1/prefixes/" + id).header("Authorization", "Bearer " + ACME).exchange().expectStatus().isNoContent();
        get("/v1/prefixes/" + id, ACME).exchange().expectStatus().isNotFound();
        Map<String, Object> after = ok("/v1/sessions/" + session.get("id") + "/messages", ACME, "{\"content\": \"And then?\", \"max_tokens\": 4}");
        assertTrue(SessionApiTest.intOf(after, "usage", "cached_tokens") > tokens);
    }

    @Test
    void shouldServeATextPrefixToPlainCompletions() {
        String text = "A long time ago, in a small village by the sea, there lived an old fisherman and his clever cat. Every morning the "
                + "fisherman took his little boat out onto the water, and every evening the cat waited for him on the steps of their house.";
        Map<String, Object> prefix = created("/v1/prefixes", GLOBEX, "{\"text\": " + quoted(text) + "}");
        int tokens = SessionApiTest.intOf(prefix, "token_count");
        assertEquals(text, prefix.get("text"));
        Map<String, Object> completion = ok("/v1/completions", GLOBEX,
                "{\"prompt\": " + quoted(text + " One day") + ", \"max_tokens\": 6, \"temperature\": 0}");
        assertTrue(SessionApiTest.intOf(completion, "usage", "prompt_tokens_details", "cached_tokens") >= tokens - 1,
                "the completion resumes the text prefix: " + completion.get("usage"));
        // A session from a text prefix: its first message follows the text.
        Map<String, Object> session = created("/v1/sessions", GLOBEX, "{\"prefix_id\": \"" + prefix.get("id") + "\"}");
        assertEquals(List.of(), session.get("messages"));
        Map<String, Object> turn = ok("/v1/sessions/" + session.get("id") + "/messages", GLOBEX, "{\"content\": \"Go on.\", \"max_tokens\": 4}");
        assertTrue(SessionApiTest.intOf(turn, "usage", "cached_tokens") >= tokens - 1);
        client.delete().uri("/v1/prefixes/" + prefix.get("id")).header("Authorization", "Bearer " + GLOBEX).exchange().expectStatus().isNoContent();
    }

    @Test
    void shouldRefuseBadPrefixRequestsWithProblems() {
        for (String body : List.of("{}", "{\"text\": \"a\", \"messages\": [{\"role\": \"system\", \"content\": \"b\"}]}", "{\"text\": \"\"}",
                "{\"messages\": []}", "{\"messages\": [{\"role\": \"robot\", \"content\": \"b\"}]}",
                "{\"messages\": [{\"role\": \"system\"}]}")) {
            post("/v1/prefixes", ACME).contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                    .expectStatus().isBadRequest()
                    .expectHeader().contentTypeCompatibleWith(MediaType.APPLICATION_PROBLEM_JSON)
                    .expectBody().jsonPath("$.type").isEqualTo("https://kvstash.io/problems/invalid-request");
        }
        post("/v1/prefixes", ACME).contentType(MediaType.APPLICATION_JSON).bodyValue("{\"text\": ").exchange()
                .expectStatus().isBadRequest().expectBody().jsonPath("$.type").isEqualTo("https://kvstash.io/problems/malformed-request");
        post("/v1/prefixes", ACME).contentType(MediaType.APPLICATION_JSON).bodyValue("{\"text\": " + quoted("word ".repeat(700)) + "}").exchange()
                .expectStatus().isBadRequest().expectBody().jsonPath("$.limit").isEqualTo("kvstash.limits.max-prompt-tokens");
        post("/v1/sessions", ACME).contentType(MediaType.APPLICATION_JSON).bodyValue("{\"prefix_id\": \"pfx-nope\"}").exchange()
                .expectStatus().isNotFound().expectBody().jsonPath("$.type").isEqualTo("https://kvstash.io/problems/unknown-prefix");
        post("/v1/sessions", ACME).contentType(MediaType.APPLICATION_JSON).bodyValue("{\"prefix_id\": \"pfx-nope\", \"system_prompt\": \"x\"}")
                .exchange().expectStatus().isBadRequest();
        get("/v1/prefixes/pfx-nope", ACME).exchange().expectStatus().isNotFound();
    }
}
