package io.kvstash.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.springframework.core.ParameterizedTypeReference;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.test.context.TestPropertySource;
import org.springframework.web.reactive.function.client.WebClient;
import reactor.core.publisher.Flux;

/** A scheduler that runs one sequence and queues one more: the rest get 429 with Retry-After (its own context). */
@TestPropertySource(properties = {"kvstash.engine.max-batch=1", "kvstash.engine.queue-capacity=1"})
class QueueFullTest extends ServerTest {
    static final ParameterizedTypeReference<Map<String, Object>> JSON = new ParameterizedTypeReference<>() {};

    String session() {
        return (String) post("/v1/sessions", ACME).contentType(MediaType.APPLICATION_JSON).bodyValue("{}").exchange()
                .expectStatus().isCreated().expectBody(JSON).returnResult().getResponseBody().get("id");
    }

    @Test
    void shouldAnswer429WithRetryAfterWhenTheQueueIsFull() {
        String running = session();
        Flux<String> a = post("/v1/sessions/" + running + "/messages", ACME).contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"content\": \"Tell a long story\", \"stream\": true, \"max_tokens\": " + MAX_REPLY + "}")
                .exchange().expectStatus().isOk().returnResult(String.class).getResponseBody().replay().autoConnect();
        a.take(1).blockLast(Duration.ofMinutes(1));
        WebClient web = WebClient.builder().baseUrl("http://localhost:" + port).defaultHeader("Authorization", "Bearer " + ACME).build();
        List<ResponseEntity<String>> answers = Flux.range(0, 3).map(i -> session())
                .flatMap(id -> web.post().uri("/v1/sessions/" + id + "/messages").contentType(MediaType.APPLICATION_JSON)
                        .bodyValue("{\"content\": \"hi\", \"max_tokens\": 1}").exchangeToMono(r -> r.toEntity(String.class)))
                .collectList().block(Duration.ofMinutes(1));
        List<ResponseEntity<String>> refused = answers.stream().filter(r -> r.getStatusCode().value() == 429).toList();
        assertEquals(2, refused.size(), "one waits in the queue, the others are refused: " + answers);
        for (ResponseEntity<String> r : refused) {
            assertEquals("1", r.getHeaders().getFirst("Retry-After"));
            assertTrue(r.getBody().contains("https://kvstash.io/problems/queue-full"), r.getBody());
            assertTrue(r.getBody().contains("kvstash.engine.queue-capacity"), r.getBody());
        }
        a.blockLast(Duration.ofMinutes(1));
        assertTrue(answers.stream().anyMatch(r -> r.getStatusCode().value() == 200), "the queued one ran: " + answers);
    }
}
