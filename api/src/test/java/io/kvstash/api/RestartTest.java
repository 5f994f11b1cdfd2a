package io.kvstash.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.core.ParameterizedTypeReference;
import org.springframework.http.MediaType;
import org.springframework.test.web.reactive.server.WebTestClient;

/**
 * The service stopped mid-conversation and started again on the same data directory: the session's
 * messages are still there and its next turn resumes the KV of the earlier turns from the warm tier
 * (RocksDB), with the same greedy reply as a session that never went through a restart. Its own
 * application contexts (started and closed here), not {@link ServerTest}'s.
 */
class RestartTest {
    static final ParameterizedTypeReference<Map<String, Object>> JSON = new ParameterizedTypeReference<>() {};
    static final int CHUNK_TOKENS = 64;
    static final List<String> QUESTIONS = List.of("What did Lily find under the tree?", "What did the dog do then?",
            "How did the day end?");

    @TempDir
    Path data;

    ConfigurableApplicationContext app;

    @BeforeAll
    static void requireModel() {
        String dir = ServerTest.models();
        assumeTrue(dir != null && !dir.isBlank(), "KVSTASH_TEST_MODELS not set: skipping the restart test that needs the real model");
        assumeTrue(Files.exists(Path.of(dir, ServerTest.MODEL)), Path.of(dir, ServerTest.MODEL) + " missing: skipping");
    }

    @AfterEach
    void stop() {
        if (app != null) {
            app.close();
        }
    }

    /**
     * Arguments of the application on a random port over {@code data} with the test model, tenants
     * acme (admin) and globex, then {@code extra}.
     */
    static String[] serverArgs(Path data, String... extra) {
        List<String> args = new ArrayList<>(List.of(
                "--server.port=0",
                "--kvstash.engine.model=" + Path.of(ServerTest.models(), ServerTest.MODEL),
                "--kvstash.engine.threads=2",
                "--kvstash.engine.context-length=1024",
                "--kvstash.store.data-dir=" + data,
                "--kvstash.kv.hot-capacity=64MB",
                "--kvstash.security.api-keys[0].key=" + ServerTest.ACME,
                "--kvstash.security.api-keys[0].tenant=acme",
                "--kvstash.security.api-keys[0].admin=true",
                "--kvstash.security.api-keys[1].key=" + ServerTest.GLOBEX,
                "--kvstash.security.api-keys[1].tenant=globex"));
        args.addAll(List.of(extra));
        return args.toArray(String[]::new);
    }

    /** The application on a random port over {@link #data}, the KV format left at its default. */
    WebTestClient start() {
        app = new SpringApplicationBuilder(KvstashApplication.class).run(serverArgs(data));
        int port = app.getEnvironment().getRequiredProperty("local.server.port", Integer.class);
        return WebTestClient.bindToServer().baseUrl("http://localhost:" + port).responseTimeout(Duration.ofMinutes(1)).build();
    }

    static String createSession(WebTestClient c, String key) {
        Map<String, Object> s = c.post().uri("/v1/sessions").header("Authorization", "Bearer " + key).contentType(MediaType.APPLICATION_JSON)
                .bodyValue(Map.of("system_prompt", ServerTest.STORY, "defaults", Map.of("temperature", 0, "max_tokens", 24)))
                .exchange().expectStatus().isCreated().expectBody(JSON).returnResult().getResponseBody();
        return (String) s.get("id");
    }

    static Map<String, Object> say(WebTestClient c, String key, String id, String content) {
        return c.post().uri("/v1/sessions/" + id + "/messages").header("Authorization", "Bearer " + key)
                .contentType(MediaType.APPLICATION_JSON).bodyValue(Map.of("content", content))
                .exchange().expectStatus().isOk().expectBody(JSON).returnResult().getResponseBody();
    }

    static Map<String, Object> session(WebTestClient c, String key, String id) {
        return c.get().uri("/v1/sessions/" + id).header("Authorization", "Bearer " + key)
                .exchange().expectStatus().isOk().expectBody(JSON).returnResult().getResponseBody();
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> map(Object o) {
        return (Map<String, Object>) o;
    }

    static String reply(Map<String, Object> turn) {
        return (String) map(turn.get("message")).get("content");
    }

    static int usage(Map<String, Object> turn, String field) {
        return ((Number) map(turn.get("usage")).get(field)).intValue();
    }

    /** The value of one Prometheus sample: the line that starts with {@code name} and carries every one of {@code labels}. */
    static double sample(String scrape, String name, String... labels) {
        List<Double> found = new ArrayList<>();
        Matcher m = Pattern.compile("(?m)^" + Pattern.quote(name) + "(\\{[^}]*\\})? (\\S+)$").matcher(scrape);
        while (m.find()) {
            String have = m.group(1) == null ? "" : m.group(1);
            boolean all = true;
            for (String l : labels) {
                all &= have.contains(l);
            }
            if (all) {
                found.add(Double.parseDouble(m.group(2)));
            }
        }
        assertEquals(1, found.size(), "one sample " + name + " " + List.of(labels) + " in:\n" + scrape);
        return found.getFirst();
    }

    static String scrape(WebTestClient c) {
        return c.get().uri("/actuator/prometheus").header("Authorization", "Bearer " + ServerTest.ACME)
                .exchange().expectStatus().isOk().expectBody(String.class).returnResult().getResponseBody();
    }

    @Test
    void shouldContinueASessionFromTheWarmTierAfterARestartWithTheReplyOfASessionThatNeverStopped() {
        WebTestClient c = start();
        String id = createSession(c, ServerTest.ACME);
        // The reference: the same conversation in another tenant (no chunk shared), all three turns before the restart.
        String reference = createSession(c, ServerTest.GLOBEX);
        List<String> expected = new ArrayList<>();
        for (String q : QUESTIONS) {
            expected.add(reply(say(c, ServerTest.GLOBEX, reference, q)));
        }
        List<Map<String, Object>> turns = new ArrayList<>();
        for (String q : QUESTIONS.subList(0, 2)) {
            turns.add(say(c, ServerTest.ACME, id, q));
        }
        assertEquals(expected.subList(0, 2), turns.stream().map(RestartTest::reply).toList(), "greedy: the same replies in both tenants");
        Map<String, Object> before = session(c, ServerTest.ACME, id);
        int tokens = ((Number) before.get("token_count")).intValue();
        int kvTokens = ((Number) before.get("kv_tokens")).intValue();
        assertEquals(tokens - 1, kvTokens, "all but the last sampled token have KV stored: " + before);
        int fullChunks = kvTokens / CHUNK_TOKENS;
        assertTrue(fullChunks >= 2, "the conversation spans at least two full chunks: " + before);

        app.close();
        app = null;
        c = start();

        Map<String, Object> after = session(c, ServerTest.ACME, id);
        assertEquals(before.get("messages"), after.get("messages"), "the messages survived the restart");
        assertEquals(tokens, ((Number) after.get("token_count")).intValue());
        assertEquals("warm", map(after.get("residency")).get("tier"), "nothing in memory yet, every chunk on disk: " + after);
        String scraped = scrape(c);
        assertEquals(0.0, sample(scraped, "kvstash_prompt_tokens_total", "source=\"cache\""), "a fresh process has counted nothing yet");
        assertTrue(sample(scraped, "kvstash_tier_chunks", "tier=\"warm\"") >= fullChunks, "the warm tier was reopened with its chunks");

        Map<String, Object> third = say(c, ServerTest.ACME, id, QUESTIONS.get(2));
        assertEquals(expected.get(2), reply(third), "the warm KV gives the reply a never-restarted session gives");
        assertTrue(usage(third, "prompt_tokens") > tokens, third.toString());
        assertEquals(0, usage(third, "hot_chunks"), "the hot tier was empty after the restart: " + third);
        assertEquals(fullChunks, usage(third, "warm_chunks"), "every full chunk of the earlier turns came from RocksDB: " + third);
        int cached = usage(third, "cached_tokens");
        assertTrue(cached >= fullChunks * CHUNK_TOKENS, "cached tokens cover the full chunks: " + third);
        assertEquals(kvTokens, cached, "the full chunks and the stored tail: every position with KV before the restart: " + third);

        scraped = scrape(c);
        assertEquals(fullChunks, sample(scraped, "kvstash_tier_lookups_total", "tier=\"warm\"", "result=\"hit\""));
        // The resume looks up every full chunk of the new prompt but its last token; those past the stored KV are misses.
        int looked = (usage(third, "prompt_tokens") - 1) / CHUNK_TOKENS;
        assertEquals(looked - fullChunks, sample(scraped, "kvstash_tier_lookups_total", "tier=\"warm\"", "result=\"miss\""));
        assertEquals(cached, sample(scraped, "kvstash_prompt_tokens_total", "source=\"cache\""));
        assertEquals(usage(third, "prompt_tokens") - cached, sample(scraped, "kvstash_prompt_tokens_total", "source=\"computed\""));
        assertEquals(1.0, sample(scraped, "kvstash_turn_first_token_seconds_count", "resumed=\"true\""));
        assertEquals(5 + 2, ((List<?>) session(c, ServerTest.ACME, id).get("messages")).size(), "system and three user/assistant pairs");
    }

    @Test
    void shouldPinARegisteredPrefixAgainAfterARestart() {
        WebTestClient c = start();
        Map<String, Object> prefix = c.post().uri("/v1/prefixes").header("Authorization", "Bearer " + ServerTest.ACME)
                .contentType(MediaType.APPLICATION_JSON).bodyValue(Map.of("messages", List.of(Map.of("role", "system", "content", ServerTest.STORY))))
                .exchange().expectStatus().isCreated().expectBody(JSON).returnResult().getResponseBody();
        String id = (String) prefix.get("id");
        int pinned = ((Number) prefix.get("pinned_chunks")).intValue();
        assertTrue(pinned >= 1, prefix.toString());

        app.close();
        app = null;
        c = start();

        Map<String, Object> again = c.get().uri("/v1/prefixes/" + id).header("Authorization", "Bearer " + ServerTest.ACME)
                .exchange().expectStatus().isOk().expectBody(JSON).returnResult().getResponseBody();
        assertEquals(pinned, ((Number) again.get("pinned_chunks")).intValue(), "loaded from the warm tier and pinned at start-up: " + again);
        assertEquals("hot", map(again.get("residency")).get("tier"));
        Map<String, Object> s = c.post().uri("/v1/sessions").header("Authorization", "Bearer " + ServerTest.ACME)
                .contentType(MediaType.APPLICATION_JSON).bodyValue(Map.of("prefix_id", id))
                .exchange().expectStatus().isCreated().expectBody(JSON).returnResult().getResponseBody();
        Map<String, Object> turn = say(c, ServerTest.ACME, (String) s.get("id"), QUESTIONS.get(0));
        assertEquals(pinned, usage(turn, "hot_chunks"), "the prefix's chunks came from memory: " + turn);
        assertTrue(usage(turn, "cached_tokens") >= ((Number) prefix.get("token_count")).intValue() - 1, turn.toString());
    }
}
