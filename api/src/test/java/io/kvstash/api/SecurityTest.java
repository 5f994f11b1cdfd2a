package io.kvstash.api;

import java.util.Map;
import org.junit.jupiter.api.Test;
import org.springframework.core.ParameterizedTypeReference;
import org.springframework.http.MediaType;

/** API keys, tenants and the actuator's open and admin parts. */
class SecurityTest extends ServerTest {
    static final ParameterizedTypeReference<Map<String, Object>> JSON = new ParameterizedTypeReference<>() {};

    @Test
    void shouldRefuseRequestsWithoutAValidKey() {
        client.get().uri("/v1/sessions").exchange().expectStatus().isUnauthorized()
                .expectHeader().valueEquals("WWW-Authenticate", "Bearer")
                .expectHeader().contentTypeCompatibleWith(MediaType.APPLICATION_PROBLEM_JSON)
                .expectBody().jsonPath("$.type").isEqualTo("https://kvstash.io/problems/unauthorized");
        get("/v1/sessions", "wrong-key").exchange().expectStatus().isUnauthorized();
        client.post().uri("/v1/chat/completions").contentType(MediaType.APPLICATION_JSON).bodyValue("{}").exchange()
                .expectStatus().isUnauthorized().expectBody().jsonPath("$.error.code").isEqualTo("invalid_api_key");
        client.get().uri("/actuator/kvcache").exchange().expectStatus().isUnauthorized();
    }

    @Test
    void shouldHideOneTenantsSessionsFromAnother() {
        Map<String, Object> s = post("/v1/sessions", ACME).contentType(MediaType.APPLICATION_JSON).bodyValue("{}").exchange()
                .expectStatus().isCreated().expectBody(JSON).returnResult().getResponseBody();
        String id = (String) s.get("id");
        get("/v1/sessions/" + id, GLOBEX).exchange().expectStatus().isNotFound()
                .expectBody().jsonPath("$.type").isEqualTo("https://kvstash.io/problems/unknown-session");
        post("/v1/sessions/" + id + "/messages", GLOBEX).contentType(MediaType.APPLICATION_JSON).bodyValue("{\"content\": \"hi\"}")
                .exchange().expectStatus().isNotFound();
        post("/v1/sessions/" + id + "/fork", GLOBEX).exchange().expectStatus().isNotFound();
        client.delete().uri("/v1/sessions/" + id).header("Authorization", "Bearer " + GLOBEX).exchange().expectStatus().isNotFound();
        get("/v1/sessions?limit=100", GLOBEX).exchange().expectStatus().isOk()
                .expectBody().jsonPath("$.data[?(@.id == '" + id + "')]").doesNotExist();
        get("/v1/sessions?limit=100", ACME).exchange().expectStatus().isOk()
                .expectBody().jsonPath("$.data[?(@.id == '" + id + "')]").exists();
        get("/v1/sessions/" + id, ACME).exchange().expectStatus().isOk();
    }

    @Test
    void shouldKeepHealthOpenAndActuatorWritesForAdmins() {
        client.get().uri("/actuator/health").exchange().expectStatus().isOk()
                .expectBody().jsonPath("$.status").isEqualTo("UP").jsonPath("$.components.kvstash.status").isEqualTo("UP");
        client.get().uri("/actuator/health/readiness").exchange().expectStatus().isOk();
        client.get().uri("/actuator/info").exchange().expectStatus().isOk().expectBody().jsonPath("$.kvstash.kvFormat").isEqualTo("Q8");
        get("/actuator/kvcache", GLOBEX).exchange().expectStatus().isOk()
                .expectBody().jsonPath("$.hot.capacityBytes").isEqualTo(64 << 20).jsonPath("$.warm.storedChunks").exists();
        get("/actuator/prometheus", GLOBEX).exchange().expectStatus().isOk()
                .expectBody(String.class).value(body -> org.junit.jupiter.api.Assertions.assertTrue(body.contains("kvstash_tier_bytes"), body));
        post("/actuator/kvcache", GLOBEX).contentType(MediaType.APPLICATION_JSON).bodyValue("{}").exchange().expectStatus().isForbidden();
        post("/actuator/kvcache", ACME).contentType(MediaType.APPLICATION_JSON).bodyValue("{}").exchange().expectStatus().isOk()
                .expectBody().jsonPath("$.evictedChunks").exists();
    }

    @Test
    void shouldServeTheOpenApiDescriptionAndItsUi() {
        client.get().uri("/v3/api-docs").exchange().expectStatus().isOk()
                .expectBody().jsonPath("$.paths['/v1/sessions/{id}/messages']").exists()
                .jsonPath("$.paths['/v1/chat/completions']").exists();
        client.get().uri("/swagger-ui.html").exchange().expectStatus().is3xxRedirection();
    }
}
