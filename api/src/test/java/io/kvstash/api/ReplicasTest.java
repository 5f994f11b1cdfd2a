package io.kvstash.api;

import static io.kvstash.api.RestartTest.JSON;
import static io.kvstash.api.RestartTest.map;
import static io.kvstash.api.RestartTest.reply;
import static io.kvstash.api.RestartTest.sample;
import static io.kvstash.api.RestartTest.say;
import static io.kvstash.api.RestartTest.scrape;
import static io.kvstash.api.RestartTest.usage;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.kvstash.offload.testing.RedisServer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.http.MediaType;
import org.springframework.test.web.reactive.server.WebTestClient;

/**
 * Two replicas (two application contexts, each with its own data directory, hot and warm tier)
 * sharing one real redis-server as the remote tier: a prompt prefilled on A is served to B from
 * Redis, and a session exported from A continues on B with A's greedy reply.
 */
class ReplicasTest {
    static final int CHUNK_TOKENS = 64;

    @TempDir
    static Path dataA;
    @TempDir
    static Path dataB;

    static RedisServer redis;
    static ConfigurableApplicationContext appA;
    static ConfigurableApplicationContext appB;
    static WebTestClient a;
    static WebTestClient b;

    @BeforeAll
    static void startReplicas() throws Exception {
        String dir = ServerTest.models();
        assumeTrue(dir != null && !dir.isBlank(), "KVSTASH_TEST_MODELS not set: skipping the replica tests that need the real model");
        assumeTrue(Files.exists(Path.of(dir, ServerTest.MODEL)), Path.of(dir, ServerTest.MODEL) + " missing: skipping");
        redis = RedisServer.start();
        String keyPrefix = "kvstash-replicas-" + System.nanoTime() + ":";
        appA = start(dataA, keyPrefix);
        a = client(appA);
        appB = start(dataB, keyPrefix);
        b = client(appB);
    }

    @AfterAll
    static void stopReplicas() {
        for (ConfigurableApplicationContext app : new ConfigurableApplicationContext[] {appA, appB}) {
            if (app != null) {
                app.close();
            }
        }
        if (redis != null) {
            redis.close();
        }
    }

    static ConfigurableApplicationContext start(Path data, String keyPrefix) {
        return new SpringApplicationBuilder(KvstashApplication.class).run(RestartTest.serverArgs(data,
                "--kvstash.limits.max-body-size=4MB",
                "--kvstash.remote.redis.url=" + redis.url,
                "--kvstash.remote.redis.key-prefix=" + keyPrefix,
                "--kvstash.remote.redis.timeout=2s"));
    }

    static WebTestClient client(ConfigurableApplicationContext app) {
        int port = app.getEnvironment().getRequiredProperty("local.server.port", Integer.class);
        return WebTestClient.bindToServer().baseUrl("http://localhost:" + port).responseTimeout(Duration.ofMinutes(1))
                .codecs(c -> c.defaultCodecs().maxInMemorySize(4 << 20)).build();
    }

    /** Waits until the replica has written (or given up on) every chunk it queued for Redis. */
    static void awaitRemoteWrites(WebTestClient c) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
        while (sample(scrape(c), "kvstash_tier_write_queue", "tier=\"remote\"") > 0) {
            assertTrue(System.nanoTime() < deadline, "the remote write queue did not drain");
            Thread.sleep(20);
        }
    }

    static Map<String, Object> chat(WebTestClient c, String question) {
        // Not the sessions' opening (another test's sessions would share its first chunks): a prompt no other test sends.
        Map<String, Object> body = Map.of("messages", List.of(Map.of("role", "system", "content", "A story for two replicas. " + ServerTest.STORY),
                Map.of("role", "user", "content", question)), "max_tokens", 12, "temperature", 0);
        return c.post().uri("/v1/chat/completions").header("Authorization", "Bearer " + ServerTest.ACME)
                .contentType(MediaType.APPLICATION_JSON).bodyValue(body)
                .exchange().expectStatus().isOk().expectBody(JSON).returnResult().getResponseBody();
    }

    static String content(Map<String, Object> completion) {
        return (String) map(map(((List<?>) completion.get("choices")).getFirst()).get("message")).get("content");
    }

    static int cached(Map<String, Object> completion) {
        return ((Number) map(map(completion.get("usage")).get("prompt_tokens_details")).get("cached_tokens")).intValue();
    }

    @Test
    void shouldServeAPromptPrefilledOnOneReplicaFromTheSharedTierOnTheOther() throws Exception {
        String scrapedB = scrape(b);
        double hitsBefore = sample(scrapedB, "kvstash_tier_lookups_total", "tier=\"remote\"", "result=\"hit\"");
        double remoteTokensBefore = sample(scrapedB, "kvstash_prompt_cached_tokens_total", "tier=\"remote\"");

        Map<String, Object> onA = chat(a, "Who did Lily play with?");
        assertEquals(0, cached(onA), "A computed the prompt");
        awaitRemoteWrites(a);
        int promptTokens = ((Number) map(onA.get("usage")).get("prompt_tokens")).intValue();
        int chunks = (promptTokens - 1) / CHUNK_TOKENS; // a turn always feeds at least its last prompt token
        assertTrue(chunks >= 2, "the prompt spans full chunks: " + onA);

        Map<String, Object> onB = chat(b, "Who did Lily play with?");
        assertEquals(content(onA), content(onB), "the same greedy reply from the shared KV (invariant 2)");
        assertEquals(chunks * CHUNK_TOKENS, cached(onB), "B took every full chunk of the prompt from Redis: " + onB);

        scrapedB = scrape(b);
        assertEquals(chunks, sample(scrapedB, "kvstash_tier_lookups_total", "tier=\"remote\"", "result=\"hit\"") - hitsBefore);
        assertEquals(chunks * CHUNK_TOKENS, sample(scrapedB, "kvstash_prompt_cached_tokens_total", "tier=\"remote\"") - remoteTokensBefore);
        assertEquals(0.0, sample(scrapedB, "kvstash_tier_lookups_total", "tier=\"remote\"", "result=\"error\""));
        assertTrue(sample(scrape(a), "kvstash_tier_writes_total", "tier=\"remote\"", "result=\"written\"") >= chunks);
        Map<String, Object> kvcache = b.get().uri("/actuator/kvcache").header("Authorization", "Bearer " + ServerTest.ACME)
                .exchange().expectStatus().isOk().expectBody(JSON).returnResult().getResponseBody();
        assertTrue(((Number) map(kvcache.get("remote")).get("hits")).intValue() >= chunks, kvcache.toString());
    }

    @Test
    void shouldContinueASessionExportedFromOneReplicaOnTheOtherWithTheSameReply() throws Exception {
        String id = RestartTest.createSession(a, ServerTest.ACME);
        say(a, ServerTest.ACME, id, "What did Lily find under the tree?");
        awaitRemoteWrites(a);

        a.get().uri("/v1/sessions/" + id + "/export").header("Authorization", "Bearer " + ServerTest.GLOBEX)
                .exchange().expectStatus().isNotFound();
        Map<String, Object> exported = a.get().uri("/v1/sessions/" + id + "/export").header("Authorization", "Bearer " + ServerTest.ACME)
                .exchange().expectStatus().isOk().expectBody(JSON).returnResult().getResponseBody();
        int kvLength = ((Number) exported.get("kv_length")).intValue();
        assertTrue(kvLength % CHUNK_TOKENS != 0 && exported.get("tail") != null, "the export carries the tail: kv_length " + kvLength);
        assertEquals(kvLength / CHUNK_TOKENS, ((List<?>) exported.get("chunk_keys")).size());

        Map<String, Object> imported = importInto(b, ServerTest.ACME, exported);
        String copy = (String) imported.get("id");
        assertNotEquals(id, copy);
        assertEquals(map(exported.get("defaults")).get("max_tokens"), map(imported.get("defaults")).get("max_tokens"));

        Map<String, Object> onA = say(a, ServerTest.ACME, id, "What did the dog do then?");
        Map<String, Object> onB = say(b, ServerTest.ACME, copy, "What did the dog do then?");
        assertEquals(reply(onA), reply(onB), "resumed on B = resumed on A (invariant 1)");
        assertEquals(kvLength / CHUNK_TOKENS, usage(onB, "remote_chunks"), "every full chunk came from Redis: " + onB);
        assertEquals(kvLength, usage(onB, "cached_tokens"), "full chunks and the imported tail: " + onB);
        assertEquals(usage(onA, "cached_tokens"), usage(onB, "cached_tokens"));

        // Another tenant importing the same document gets its own keys: nothing read from acme's chunks, recomputed, same reply.
        Map<String, Object> foreign = importInto(b, ServerTest.GLOBEX, exported);
        Map<String, Object> onForeign = say(b, ServerTest.GLOBEX, (String) foreign.get("id"), "What did the dog do then?");
        assertEquals(0, usage(onForeign, "cached_tokens"), onForeign.toString());
        assertEquals(reply(onA), reply(onForeign));
    }

    @Test
    void shouldRejectAnImportForAnotherModelOrFormatOrWithBadTokens() {
        String id = RestartTest.createSession(a, ServerTest.ACME);
        Map<String, Object> exported = a.get().uri("/v1/sessions/" + id + "/export").header("Authorization", "Bearer " + ServerTest.ACME)
                .exchange().expectStatus().isOk().expectBody(JSON).returnResult().getResponseBody();
        expectProblem(with(exported, "model_fingerprint", "00000000000000000000000000000000"), 409, "incompatible-session");
        expectProblem(with(exported, "kv_format", "KIVI2"), 409, "incompatible-session");
        expectProblem(with(exported, "chunk_tokens", 32), 409, "incompatible-session");
        expectProblem(with(exported, "format_version", 2), 400, "invalid-request");
        expectProblem(with(exported, "tokens", List.of(1, 999_999)), 400, "invalid-request");
        expectProblem(with(exported, "kv_length", 100_000), 400, "invalid-request");
        expectProblem(with(exported, "tail", "AAAA"), 400, "invalid-request");
        expectProblem(with(exported, "chunk_keys", List.of("not-a-key")), 400, "invalid-request");
        b.post().uri("/v1/sessions/import").header("Authorization", "Bearer " + ServerTest.ACME).contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"tokens\": \"x\"").exchange().expectStatus().isBadRequest();
    }

    static Map<String, Object> with(Map<String, Object> doc, String field, Object value) {
        Map<String, Object> copy = new HashMap<>(doc);
        copy.put(field, value);
        return copy;
    }

    static void expectProblem(Map<String, Object> doc, int status, String type) {
        b.post().uri("/v1/sessions/import").header("Authorization", "Bearer " + ServerTest.ACME).contentType(MediaType.APPLICATION_JSON)
                .bodyValue(doc).exchange().expectStatus().isEqualTo(status)
                .expectBody(JSON).value(p -> assertEquals("https://kvstash.io/problems/" + type, p.get("type"), p.toString()));
    }

    static Map<String, Object> importInto(WebTestClient c, String key, Map<String, Object> exported) {
        return c.post().uri("/v1/sessions/import").header("Authorization", "Bearer " + key).contentType(MediaType.APPLICATION_JSON)
                .bodyValue(exported).exchange().expectStatus().isCreated().expectBody(JSON).returnResult().getResponseBody();
    }
}
