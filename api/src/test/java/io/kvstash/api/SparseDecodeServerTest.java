package io.kvstash.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvstash.engine.InferenceEngine;
import io.kvstash.engine.model.SparseAttention;
import io.kvstash.engine.model.SparseProbe;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.http.MediaType;
import org.springframework.test.context.TestPropertySource;

/** kvstash.engine.sparse.* reach the engine, and a chat completion then decodes sparsely (its own context). */
@TestPropertySource(properties = {"kvstash.engine.sparse.enabled=true", "kvstash.engine.sparse.budget-tokens=64",
        "kvstash.engine.sparse.min-context=64", "kvstash.engine.sparse.dense-layers=1", "kvstash.engine.sparse.scoring=mass-bound",
        "kvstash.engine.sparse.summary-tokens=32"})
class SparseDecodeServerTest extends ServerTest {
    @Autowired
    InferenceEngine engine;

    @Test
    void shouldDecodeSparselyWhenEnabled() {
        assertEquals(new SparseAttention(true, 64, 64, 1, SparseAttention.Scoring.MASS_BOUND, 32), engine.sparse());
        SparseProbe probe = new SparseProbe();
        engine.setSparseProbe(probe);
        try {
            String body = "{\"model\": \"stories15M-q8_0\", \"messages\": [{\"role\": \"user\", \"content\": \"" + STORY.replace("\"", "\\\"")
                    + "\"}], \"max_tokens\": 80, \"temperature\": 0}";
            post("/v1/chat/completions", ACME).contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                    .expectStatus().isOk().expectBody().jsonPath("$.usage.completion_tokens").value(n -> assertTrue(((Number) n).intValue() > 0));
        } finally {
            engine.setSparseProbe(null);
        }
        // Past two chunks, a budget of the sink alone leaves chunks out.
        assertTrue(probe.measured() > 0, "no decode step attended sparsely");
        double mass = probe.meanMassCaptured();
        assertTrue(mass > 0 && mass < 1, "attention mass captured " + mass);
    }
}
