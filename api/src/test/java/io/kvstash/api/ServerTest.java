package io.kvstash.api;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.test.web.reactive.server.WebTestClient;

/**
 * The real application on a random port with stories15M and RocksDB in a temp directory. Every
 * end-to-end test class extends this one, so they share one application context (one model load).
 * Two tenants: {@code acme} (admin key) and {@code globex}.
 */
// Each class closes its application context when done: the next one (QueueFullTest's, with other
// settings) opens the same RocksDB directory, which a still-cached context would hold locked.
@org.springframework.test.annotation.DirtiesContext(classMode = org.springframework.test.annotation.DirtiesContext.ClassMode.AFTER_CLASS)
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
public abstract class ServerTest {
    public static final String MODEL = "stories15M-q8_0.gguf";
    public static final String ACME = "acme-key";
    public static final String GLOBEX = "globex-key";
    public static final int MAX_REPLY = 400;
    /** A prompt longer than two 64-token chunks, so that prefix reuse is visible. */
    public static final String STORY = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her "
            + "friends. One day, she saw a big red ball under a tree. She ran to get it, but a small dog got there first. The dog "
            + "wagged its tail and looked at Lily. Lily smiled and said, \"Can we play together?\" The dog barked happily. They "
            + "played with the ball all afternoon, running and jumping in the warm sun.";

    static final Path DATA = tempDir();

    @LocalServerPort
    int port;

    protected WebTestClient client;

    static Path tempDir() {
        try {
            Path p = Files.createTempDirectory("kvstash-api-test");
            p.toFile().deleteOnExit();
            return p;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static String models() {
        return System.getenv("KVSTASH_TEST_MODELS");
    }

    @BeforeAll
    static void requireModel() {
        String dir = models();
        assumeTrue(dir != null && !dir.isBlank(), "KVSTASH_TEST_MODELS not set: skipping the end-to-end tests that need the real model");
        assumeTrue(Files.exists(Path.of(dir, MODEL)), Path.of(dir, MODEL) + " missing: skipping");
    }

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry r) {
        r.add("kvstash.engine.model", () -> Path.of(models() == null ? "." : models(), MODEL).toString());
        r.add("kvstash.engine.threads", () -> "2");
        r.add("kvstash.engine.context-length", () -> "1024");
        r.add("kvstash.store.data-dir", () -> DATA.toString());
        r.add("kvstash.kv.hot-capacity", () -> "64MB");
        r.add("kvstash.limits.max-tokens-per-reply", () -> Integer.toString(MAX_REPLY));
        r.add("kvstash.limits.max-prompt-tokens", () -> "600");
        r.add("kvstash.limits.max-body-size", () -> "16KB");
        r.add("kvstash.security.api-keys[0].key", () -> ACME);
        r.add("kvstash.security.api-keys[0].tenant", () -> "acme");
        r.add("kvstash.security.api-keys[0].admin", () -> "true");
        r.add("kvstash.security.api-keys[1].key", () -> GLOBEX);
        r.add("kvstash.security.api-keys[1].tenant", () -> "globex");
    }

    @BeforeEach
    void connect() {
        client = WebTestClient.bindToServer().baseUrl("http://localhost:" + port).responseTimeout(Duration.ofMinutes(1)).build();
    }

    protected WebTestClient.RequestBodySpec post(String path, String key) {
        return client.post().uri(path).header("Authorization", "Bearer " + key);
    }

    protected WebTestClient.RequestHeadersSpec<?> get(String path, String key) {
        return client.get().uri(path).header("Authorization", "Bearer " + key);
    }
}
