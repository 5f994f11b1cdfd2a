package io.kvstash.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.springframework.core.ParameterizedTypeReference;
import org.springframework.http.MediaType;
import org.springframework.http.codec.ServerSentEvent;
import reactor.core.publisher.Flux;

/** The sessions API end to end: conversations, streaming, cancellation, problems. */
class SessionApiTest extends ServerTest {
    static final ParameterizedTypeReference<Map<String, Object>> JSON = new ParameterizedTypeReference<>() {};
    static final ParameterizedTypeReference<ServerSentEvent<Map<String, Object>>> EVENTS = new ParameterizedTypeReference<>() {};

    String createSession(String key, String body) {
        Map<String, Object> s = post("/v1/sessions", key).contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                .expectStatus().isCreated()
                .expectHeader().valueMatches("Location", "/v1/sessions/.+")
                .expectBody(JSON).returnResult().getResponseBody();
        return (String) s.get("id");
    }

    Map<String, Object> say(String key, String id, String body) {
        return post("/v1/sessions/" + id + "/messages", key).contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                .expectStatus().isOk().expectBody(JSON).returnResult().getResponseBody();
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> map(Object o) {
        return (Map<String, Object>) o;
    }

    static int intOf(Map<String, Object> m, String... path) {
        Object o = m;
        for (String p : path) {
            o = map(o).get(p);
        }
        return ((Number) o).intValue();
    }

    @Test
    void shouldResumeTheConversationFromCachedTokensOnTheSecondTurn() {
        String id = createSession(ACME, "{\"system_prompt\": \"A story told once. " + STORY.replace("\"", "\\\"") + "\", \"defaults\": {\"temperature\": 0}}");
        int system = intOf(get("/v1/sessions/" + id, ACME).exchange().expectStatus().isOk().expectBody(JSON).returnResult().getResponseBody(),
                "kv_tokens");
        assertTrue(system > 64, "the system prompt is prefilled when the session is created");
        Map<String, Object> first = say(ACME, id, "{\"content\": \"Tell me what happened next.\", \"max_tokens\": 20}");
        assertEquals(id, first.get("session_id"));
        assertEquals(20, intOf(first, "usage", "completion_tokens"));
        assertEquals(system, intOf(first, "usage", "cached_tokens"), "the first turn resumes the system prompt's KV");
        String reply = (String) map(first.get("message")).get("content");
        assertFalse(reply.isBlank());

        Map<String, Object> second = say(ACME, id, "{\"content\": \"And then?\", \"max_tokens\": 5}");
        int before = intOf(first, "usage", "prompt_tokens") + intOf(first, "usage", "completion_tokens");
        assertTrue(intOf(second, "usage", "prompt_tokens") > before);
        assertTrue(intOf(second, "usage", "cached_tokens") >= before - 1,
                "the second turn resumes every position of the first from the tiers: " + second.get("usage"));
        assertTrue(intOf(second, "usage", "hot_chunks") >= 2, "the first turn's full chunks are in the hot tier: " + second.get("usage"));

        Map<String, Object> session = get("/v1/sessions/" + id, ACME).exchange().expectStatus().isOk().expectBody(JSON).returnResult()
                .getResponseBody();
        List<Object> messages = (List<Object>) session.get("messages");
        assertEquals(List.of("system", "user", "assistant", "user", "assistant"),
                messages.stream().map(m -> map(m).get("role")).toList());
        assertEquals(reply, map(messages.get(2)).get("content"));
        assertEquals(intOf(second, "usage", "prompt_tokens") + 5, intOf(session, "token_count"));
        assertEquals("hot", map(session.get("residency")).get("tier"));
    }

    @Test
    void shouldStreamDeltasWhoseTextIsTheStoredReply() {
        String id = createSession(ACME, "{}");
        List<ServerSentEvent<Map<String, Object>>> events = post("/v1/sessions/" + id + "/messages", ACME)
                .contentType(MediaType.APPLICATION_JSON).accept(MediaType.TEXT_EVENT_STREAM)
                .bodyValue("{\"content\": \"Once upon a time\", \"stream\": true, \"max_tokens\": 12, \"temperature\": 0}")
                .exchange().expectStatus().isOk()
                .expectHeader().contentTypeCompatibleWith(MediaType.TEXT_EVENT_STREAM)
                .returnResult(EVENTS).getResponseBody().collectList().block(Duration.ofMinutes(1));
        assertNotNull(events);
        ServerSentEvent<Map<String, Object>> last = events.getLast();
        assertEquals("done", last.event());
        List<ServerSentEvent<Map<String, Object>>> deltas = events.subList(0, events.size() - 1);
        assertTrue(deltas.size() >= 2, "one event per token: " + events);
        assertTrue(deltas.stream().allMatch(e -> "delta".equals(e.event())));
        String streamed = String.join("", deltas.stream().map(e -> (String) e.data().get("content")).toList());
        assertEquals(map(last.data().get("message")).get("content"), streamed);
        Map<String, Object> session = get("/v1/sessions/" + id, ACME).exchange().expectBody(JSON).returnResult().getResponseBody();
        assertEquals(streamed, map(((List<Object>) session.get("messages")).get(1)).get("content"));
    }

    @Test
    void shouldStopGeneratingWhenTheClientCancelsTheStream() throws InterruptedException {
        String id = createSession(ACME, "{}");
        Flux<ServerSentEvent<Map<String, Object>>> stream = post("/v1/sessions/" + id + "/messages", ACME)
                .contentType(MediaType.APPLICATION_JSON).accept(MediaType.TEXT_EVENT_STREAM)
                .bodyValue("{\"content\": \"Tell a long story\", \"stream\": true, \"max_tokens\": " + MAX_REPLY
                        + ", \"temperature\": 0.8, \"seed\": 7}")
                .exchange().expectStatus().isOk().returnResult(EVENTS).getResponseBody();
        List<ServerSentEvent<Map<String, Object>>> seen = stream.take(2).collectList().block(Duration.ofMinutes(1));
        assertEquals(2, seen.size());
        // The turn ends soon after, stored with the tokens generated until then.
        Map<String, Object> session = null;
        for (int i = 0; i < 400 && (session == null || ((List<?>) session.get("messages")).size() < 2); i++) {
            Thread.sleep(25);
            session = get("/v1/sessions/" + id, ACME).exchange().expectBody(JSON).returnResult().getResponseBody();
        }
        assertEquals(2, ((List<?>) session.get("messages")).size(), "the cancelled turn was stored: " + session);
        assertTrue(intOf(session, "token_count") < 20 + MAX_REPLY / 2,
                "generation stopped long before max_tokens = " + MAX_REPLY + ": the session has " + session.get("token_count") + " tokens");
        // And the session takes the next turn.
        say(ACME, id, "{\"content\": \"Go on\", \"max_tokens\": 1}");
    }

    @Test
    void shouldRefuseASecondTurnWhileOneRunsWith409() {
        String id = createSession(ACME, "{}");
        Flux<ServerSentEvent<Map<String, Object>>> running = post("/v1/sessions/" + id + "/messages", ACME)
                .contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"content\": \"Tell a long story\", \"stream\": true, \"max_tokens\": " + MAX_REPLY + "}")
                .exchange().expectStatus().isOk().returnResult(EVENTS).getResponseBody().replay().autoConnect();
        running.take(1).blockLast(Duration.ofMinutes(1));
        post("/v1/sessions/" + id + "/messages", ACME).contentType(MediaType.APPLICATION_JSON).bodyValue("{\"content\": \"hi\"}")
                .exchange().expectStatus().isEqualTo(409)
                .expectHeader().contentTypeCompatibleWith(MediaType.APPLICATION_PROBLEM_JSON)
                .expectBody().jsonPath("$.type").isEqualTo("https://kvstash.io/problems/session-busy")
                .jsonPath("$.status").isEqualTo(409);
        assertEquals("done", running.blockLast(Duration.ofMinutes(1)).event());
    }

    @Test
    void shouldAnswerProblemDetailsForBadInput() {
        get("/v1/sessions/no-such-session", ACME).exchange().expectStatus().isNotFound()
                .expectHeader().contentTypeCompatibleWith(MediaType.APPLICATION_PROBLEM_JSON)
                .expectBody().jsonPath("$.type").isEqualTo("https://kvstash.io/problems/unknown-session")
                .jsonPath("$.instance").isEqualTo("/v1/sessions/no-such-session");
        post("/v1/sessions/no-such-session/messages", ACME).contentType(MediaType.APPLICATION_JSON).bodyValue("{\"content\": \"hi\"}")
                .exchange().expectStatus().isNotFound();
        post("/v1/sessions", ACME).contentType(MediaType.APPLICATION_JSON).bodyValue("{\"model\": \"gpt-4o\"}")
                .exchange().expectStatus().isNotFound()
                .expectBody().jsonPath("$.type").isEqualTo("https://kvstash.io/problems/unknown-model").jsonPath("$.param").isEqualTo("model");
        createSession(ACME, "{\"model\": \"stories15M-q8_0\"}");
        String id = createSession(ACME, "{}");
        post("/v1/sessions/" + id + "/messages", ACME).contentType(MediaType.APPLICATION_JSON).bodyValue("{\"content\": ")
                .exchange().expectStatus().isBadRequest()
                .expectBody().jsonPath("$.type").isEqualTo("https://kvstash.io/problems/malformed-request");
        post("/v1/sessions/" + id + "/messages", ACME).contentType(MediaType.APPLICATION_JSON).bodyValue("{\"content\": \"hi\", \"max_tokens\": 100000}")
                .exchange().expectStatus().isBadRequest()
                .expectBody().jsonPath("$.type").isEqualTo("https://kvstash.io/problems/reply-too-long")
                .jsonPath("$.limit").isEqualTo("kvstash.limits.max-tokens-per-reply");
        post("/v1/sessions/" + id + "/messages", ACME).contentType(MediaType.APPLICATION_JSON).bodyValue("{\"content\": \"hi\", \"temperature\": -1}")
                .exchange().expectStatus().isBadRequest().expectBody().jsonPath("$.param").isEqualTo("temperature");
        post("/v1/sessions/" + id + "/messages", ACME).contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"content\": \"" + "story time ".repeat(400) + "\"}")
                .exchange().expectStatus().isBadRequest()
                .expectBody().jsonPath("$.limit").isEqualTo("kvstash.limits.max-prompt-tokens");
        post("/v1/sessions/" + id + "/messages", ACME).contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"content\": \"" + "x".repeat(20_000) + "\"}")
                .exchange().expectStatus().isEqualTo(413)
                .expectBody().jsonPath("$.limit").isEqualTo("kvstash.limits.max-body-size");
        post("/v1/sessions/" + id + "/messages", ACME).contentType(MediaType.TEXT_PLAIN).bodyValue("hi")
                .exchange().expectStatus().isEqualTo(415);
        get("/v1/sessions?limit=0", ACME).exchange().expectStatus().isBadRequest().expectBody().jsonPath("$.param").isEqualTo("limit");
        // The session is untouched by all of that.
        get("/v1/sessions/" + id, ACME).exchange().expectStatus().isOk().expectBody().jsonPath("$.token_count").isEqualTo(0);
    }

    @Test
    void shouldForkOffloadRestoreAndDelete() {
        String id = createSession(ACME, "{\"system_prompt\": \"" + STORY.replace("\"", "\\\"") + "\"}");
        say(ACME, id, "{\"content\": \"What next?\", \"max_tokens\": 4, \"temperature\": 0}");
        Map<String, Object> fork = post("/v1/sessions/" + id + "/fork", ACME).exchange().expectStatus().isCreated().expectBody(JSON)
                .returnResult().getResponseBody();
        assertEquals(3, ((List<?>) fork.get("messages")).size());
        post("/v1/sessions/" + id + "/offload", ACME).exchange().expectStatus().isOk()
                .expectBody().jsonPath("$.tier").isEqualTo("warm").jsonPath("$.hot_chunks").isEqualTo(0);
        post("/v1/sessions/" + id + "/restore", ACME).exchange().expectStatus().isOk()
                .expectBody().jsonPath("$.tier").isEqualTo("hot").jsonPath("$.warm_chunks").isEqualTo(0);
        client.delete().uri("/v1/sessions/" + id).header("Authorization", "Bearer " + ACME).exchange().expectStatus().isNoContent();
        get("/v1/sessions/" + id, ACME).exchange().expectStatus().isNotFound();
        get("/v1/sessions/" + fork.get("id"), ACME).exchange().expectStatus().isOk();
    }

    @Test
    void shouldListTheCallersSessionsInPages() {
        for (int i = 0; i < 3; i++) {
            createSession(GLOBEX, "{}");
        }
        Map<String, Object> page = get("/v1/sessions?limit=2", GLOBEX).exchange().expectStatus().isOk().expectBody(JSON).returnResult()
                .getResponseBody();
        assertEquals(2, ((List<?>) page.get("data")).size());
        assertEquals(true, page.get("has_more"));
        Map<String, Object> rest = get("/v1/sessions?limit=100&after=" + page.get("next_after"), GLOBEX).exchange().expectBody(JSON)
                .returnResult().getResponseBody();
        assertFalse(((List<?>) rest.get("data")).isEmpty());
        assertEquals(false, rest.get("has_more"));
    }
}
