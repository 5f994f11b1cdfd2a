package io.kvstash.api;

import static io.kvstash.api.SessionApiTest.JSON;
import static io.kvstash.api.SessionApiTest.intOf;
import static io.kvstash.api.SessionApiTest.map;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.junit.jupiter.api.Test;
import org.springframework.http.MediaType;
import org.springframework.test.context.TestPropertySource;

/**
 * kvstash.engine.sparse.park.* reach the session layer: a long session's old chunks are parked in the warm
 * tier between turns, the next turn reads them from there, and the session's residency shows it.
 */
@TestPropertySource(properties = {"kvstash.engine.sparse.enabled=true", "kvstash.engine.sparse.budget-tokens=128",
        "kvstash.engine.sparse.min-context=128", "kvstash.engine.sparse.dense-layers=0", "kvstash.engine.sparse.park.enabled=true",
        "kvstash.engine.sparse.park.resident-chunks=1", "kvstash.engine.sparse.park.transient-chunks=16"})
class ParkingServerTest extends ServerTest {

    Map<String, Object> say(String id, String body) {
        return post("/v1/sessions/" + id + "/messages", ACME).contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                .expectStatus().isOk().expectBody(JSON).returnResult().getResponseBody();
    }

    @Test
    void shouldParkTheOldChunksOfALongSessionAndShowThemInItsResidency() {
        Map<String, Object> created = post("/v1/sessions", ACME).contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"system_prompt\": \"" + (STORY + " " + STORY + " " + STORY + " " + STORY).replace("\"", "\\\"") + "\", \"defaults\": {\"temperature\": 0}}").exchange()
                .expectStatus().isCreated().expectBody(JSON).returnResult().getResponseBody();
        String id = (String) created.get("id");
        say(id, "{\"content\": \"Tell me a story.\", \"max_tokens\": 20}");
        Map<String, Object> session = get("/v1/sessions/" + id, ACME).exchange().expectStatus().isOk().expectBody(JSON).returnResult()
                .getResponseBody();
        int chunks = intOf(session, "kv_tokens") / 64;
        assertTrue(chunks >= 5, "a long session: " + session.get("kv_tokens") + " positions");
        Map<String, Object> residency = map(session.get("residency"));
        int parked = chunks - 2; // all but the sink and the newest chunk
        assertEquals(parked, intOf(residency, "parked_chunks"), residency.toString());
        assertEquals(parked, intOf(residency, "warm_chunks"), "parked chunks left the hot tier: " + residency);
        assertEquals(2, intOf(residency, "hot_chunks"), residency.toString());
        assertEquals("warm", residency.get("tier"));
        assertTrue(intOf(residency, "summary_bytes") > 0 && intOf(residency, "transient_bytes") > 0, residency.toString());

        Map<String, Object> next = say(id, "{\"content\": \"And then?\", \"max_tokens\": 20}");
        assertEquals(parked, intOf(next, "usage", "warm_chunks"), "the next turn read the parked chunks from the warm tier: " + next);
        assertTrue(intOf(next, "usage", "cached_tokens") >= chunks * 64, next.toString());

        Map<String, Object> kvcache = get("/actuator/kvcache", ACME).exchange().expectStatus().isOk().expectBody(JSON).returnResult()
                .getResponseBody();
        Map<String, Object> largest = map(((java.util.List<?>) kvcache.get("largestSessions")).get(0));
        assertEquals(id, largest.get("id"));
        assertTrue(intOf(largest, "parked_chunks") >= parked, largest.toString());
    }
}
