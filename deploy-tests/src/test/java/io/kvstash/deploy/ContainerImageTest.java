package io.kvstash.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.github.dockerjava.api.DockerClient;
import com.github.dockerjava.api.command.InspectContainerResponse;
import com.github.dockerjava.api.model.AccessMode;
import com.github.dockerjava.api.model.Bind;
import com.github.dockerjava.api.model.HostConfig;
import com.github.dockerjava.api.model.Volume;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.containers.GenericContainer;
import org.testcontainers.containers.wait.strategy.Wait;
import org.testcontainers.utility.DockerImageName;

/**
 * The real image (built from the Dockerfile; its name in {@code KVSTASH_DOCKER_IMAGE}) run the way a
 * cluster runs it: memory limit, read-only root filesystem with a writable /tmp, the model mounted
 * read-only, the warm tier on a named volume that outlives the container. Skipped with a message
 * when there is no Docker daemon, no image or no test models ({@code KVSTASH_TEST_MODELS}).
 */
class ContainerImageTest {
    private static final String IMAGE = System.getenv("KVSTASH_DOCKER_IMAGE");
    private static final String MODELS = System.getenv("KVSTASH_TEST_MODELS");
    private static final String MODEL_FILE = "stories15M-q8_0.gguf";
    private static final long MEMORY_LIMIT = 1L << 30;
    private static final ObjectMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
    private static final List<String> VOLUMES = new ArrayList<>();

    private static DockerClient docker;

    private static String skipReason;
    private static boolean checked;

    /** Per test, so each one is reported as skipped (with the reason, also printed once to stderr). */
    @BeforeEach
    void requireDockerImageAndModel() {
        synchronized (ContainerImageTest.class) {
            if (!checked) {
                checked = true;
                skipReason = skipReason();
                if (skipReason != null) {
                    System.err.println("ContainerImageTest skipped: " + skipReason);
                }
            }
        }
        assumeTrue(skipReason == null, skipReason);
    }

    private static String skipReason() {
        if (IMAGE == null || IMAGE.isBlank()) {
            return "KVSTASH_DOCKER_IMAGE is not set (build the image, e.g. docker build --network host -t kvstash:test ., "
                    + "and export KVSTASH_DOCKER_IMAGE=kvstash:test; .ci/run does both when Docker can run)";
        }
        if (MODELS == null || !Files.isRegularFile(Path.of(MODELS, MODEL_FILE))) {
            return "KVSTASH_TEST_MODELS does not hold " + MODEL_FILE;
        }
        if (!DockerClientFactory.instance().isDockerAvailable()) {
            return "no Docker daemon reachable";
        }
        docker = DockerClientFactory.instance().client();
        try {
            docker.inspectImageCmd(IMAGE).exec();
        } catch (RuntimeException e) {
            return "image " + IMAGE + " is not in the local Docker daemon";
        }
        return null;
    }

    @AfterAll
    static void removeVolumes() {
        if (docker == null) {
            return;
        }
        for (String v : VOLUMES) {
            try {
                docker.removeVolumeCmd(v).exec();
            } catch (RuntimeException e) {
                System.err.println("could not remove volume " + v + ": " + e.getMessage());
            }
        }
    }

    @Test
    void shouldHoldAConversationAndContinueItFromTheWarmTierAfterARestart() throws Exception {
        String volume = newVolume();
        String sessionId;
        String forkReply;
        try (GenericContainer<?> first = kvstash(volume)) {
            first.start();
            // Non-root, and the entry point derived the JVM's memory limits from the container's.
            assertEquals("10001", first.execInContainer("id", "-u").getStdout().strip());
            String cmdline = first.execInContainer("bash", "-c", "tr '\\0' ' ' < /proc/1/cmdline").getStdout();
            assertTrue(cmdline.contains("-XX:MaxRAMPercentage=30"), cmdline);
            assertTrue(cmdline.contains("-XX:MaxDirectMemorySize=" + MEMORY_LIMIT / 100 * 40), cmdline);
            assertTrue(cmdline.contains("--add-modules jdk.incubator.vector"), cmdline);
            assertHealthCheckPasses(first);

            String base = baseUrl(first);
            sessionId = post(base + "/v1/sessions", """
                    {"system_prompt": "You tell short stories about animals who live in a big green forest near a river.",
                     "defaults": {"temperature": 0}}""", 201).path("id").asText();
            JsonNode turn1 = post(base + "/v1/sessions/" + sessionId + "/messages",
                    "{\"content\": \"Tell me about a fox.\", \"max_tokens\": 40}", 200);
            assertFalse(turn1.at("/message/content").asText().isBlank(), turn1.toString());
            post(base + "/v1/sessions/" + sessionId + "/messages", "{\"content\": \"And then?\", \"max_tokens\": 40}", 200);
            JsonNode before = get(base + "/v1/sessions/" + sessionId);
            assertTrue(before.path("kv_tokens").asInt() >= 64, "at least one full chunk: " + before);

            // The reply a session that never left memory gives to the next message.
            String forkId = post(base + "/v1/sessions/" + sessionId + "/fork", "{}", 201).path("id").asText();
            forkReply = post(base + "/v1/sessions/" + forkId + "/messages", "{\"content\": \"What happened next?\", \"max_tokens\": 30}", 200)
                    .at("/message/content").asText();

            stopGracefully(first);
        }

        try (GenericContainer<?> second = kvstash(volume)) {
            second.start();
            assertTrue(lastRocksDbLog(second).contains("Shutdown complete"), "RocksDB was closed, not abandoned");
            String base = baseUrl(second);
            JsonNode after = get(base + "/v1/sessions/" + sessionId);
            assertEquals(5, after.path("messages").size(), after.toString());
            assertEquals("warm", after.at("/residency/tier").asText(), after.toString());
            assertEquals(0, after.at("/residency/hot_chunks").asInt());

            JsonNode turn3 = post(base + "/v1/sessions/" + sessionId + "/messages",
                    "{\"content\": \"What happened next?\", \"max_tokens\": 30}", 200);
            assertTrue(turn3.at("/usage/cached_tokens").asInt() >= 64, "resumed from stored KV: " + turn3);
            assertTrue(turn3.at("/usage/warm_chunks").asInt() > 0, "chunks read from the warm tier: " + turn3);
            assertEquals(forkReply, turn3.at("/message/content").asText(), "same reply as a session that never left memory");
        }
    }

    @Test
    void shouldFinishTheTurnInFlightAndCloseTheStoreOnSigterm() throws Exception {
        String volume = newVolume();
        String sessionId;
        List<String> events = new ArrayList<>();
        StringBuilder streamed = new StringBuilder();
        String done;
        try (GenericContainer<?> c = kvstash(volume)) {
            c.start();
            String base = baseUrl(c);
            sessionId = post(base + "/v1/sessions", "{\"defaults\": {\"temperature\": 0}}", 201).path("id").asText();

            CountDownLatch firstDelta = new CountDownLatch(1);
            HttpRequest request = HttpRequest.newBuilder(URI.create(base + "/v1/sessions/" + sessionId + "/messages"))
                    .header("content-type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString("{\"content\": \"Once upon a time\", \"stream\": true, \"max_tokens\": 200}"))
                    .build();
            CompletableFuture<String> reading = HTTP.sendAsync(request, HttpResponse.BodyHandlers.ofLines()).thenApply(response -> {
                assertEquals(200, response.statusCode());
                String event = null;
                String last = null;
                try (Stream<String> lines = response.body()) {
                    for (String line : (Iterable<String>) lines::iterator) {
                        if (line.startsWith("event:")) {
                            event = line.substring(6).strip();
                            synchronized (events) {
                                events.add(event);
                            }
                        } else if (line.startsWith("data:") && event != null) {
                            String data = line.substring(5);
                            if (event.equals("delta")) {
                                streamed.append(parse(data).path("content").asText());
                                firstDelta.countDown();
                            } else {
                                last = data;
                            }
                        }
                    }
                } catch (java.io.UncheckedIOException e) {
                    // The connection can close, as the server shuts down, before the chunked response's
                    // final empty chunk arrives (seen once in five CI runs: "EOF reached while reading" in the
                    // chunked decoder). What the stream carried is judged below from its events: a stream cut
                    // before its done or error event still fails there.
                    System.out.printf("stream connection closed after %d events: %s%n", events.size(), e.getMessage());
                }
                return last;
            });
            assertTrue(firstDelta.await(60, TimeUnit.SECONDS), "generation started");
            int deltasBeforeSignal = deltaCount(events);
            docker.killContainerCmd(c.getContainerId()).withSignal("SIGTERM").exec();
            done = reading.get(60, TimeUnit.SECONDS);
            System.out.printf("SIGTERM after %d streamed pieces; the stream went on for %d more and ended with %s%n",
                    deltasBeforeSignal, deltaCount(events) - deltasBeforeSignal, events.getLast());
            int exit = waitForExit(c);
            assertTrue(exit == 143 || exit == 0, "the JVM exited on SIGTERM, not killed: exit code " + exit);
            String logs = c.getLogs();
            assertTrue(logs.contains("Graceful shutdown complete"), logs);
        }
        // The in-flight turn either finished (done) or failed with an error event: never a cut stream.
        String lastEvent = events.getLast();
        assertTrue(lastEvent.equals("done") || lastEvent.equals("error"), "stream ended with " + events);

        try (GenericContainer<?> again = kvstash(volume)) {
            again.start();
            assertTrue(lastRocksDbLog(again).contains("Shutdown complete"), "RocksDB was closed, not abandoned");
            String base = baseUrl(again);
            JsonNode session = get(base + "/v1/sessions/" + sessionId);
            JsonNode messages = session.path("messages");
            if (lastEvent.equals("done")) {
                // Nothing lost: the acknowledged reply is stored exactly as streamed.
                String reply = parse(done).at("/message/content").asText();
                assertEquals(streamed.toString(), reply);
                assertEquals(2, messages.size(), session.toString());
                assertEquals(reply, messages.get(1).path("content").asText());
            }
            // Either way the session goes on.
            JsonNode next = post(base + "/v1/sessions/" + sessionId + "/messages", "{\"content\": \"The end.\", \"max_tokens\": 5}", 200);
            assertFalse(next.at("/message/content").asText().isEmpty(), next.toString());
        }
    }

    private static int deltaCount(List<String> events) {
        synchronized (events) {
            return (int) events.stream().filter("delta"::equals).count();
        }
    }

    private static GenericContainer<?> kvstash(String volume) {
        return new GenericContainer<>(DockerImageName.parse(IMAGE))
                .withExposedPorts(8080)
                .withEnv("KVSTASH_KV_HOTCAPACITY", "128MB")
                .withCreateContainerCmdModifier(cmd -> {
                    // Binds given here, not with withFileSystemBind: that makes Testcontainers check file
                    // mounting with an alpine image from a registry first (minutes of retries offline).
                    HostConfig host = cmd.getHostConfig();
                    host.withBinds(new Bind(Path.of(MODELS, MODEL_FILE).toString(), new Volume("/models/model.gguf"), AccessMode.ro),
                                    new Bind(volume, new Volume("/var/lib/kvstash")))
                            .withMemory(MEMORY_LIMIT)
                            .withReadonlyRootfs(true)
                            .withTmpFs(Map.of("/tmp", "rw,exec,nosuid,size=256m"));
                })
                .waitingFor(Wait.forHttp("/actuator/health/readiness").forStatusCode(200).withStartupTimeout(Duration.ofMinutes(3)));
    }

    private static String newVolume() {
        String name = "kvstash-test-" + UUID.randomUUID();
        docker.createVolumeCmd().withName(name).exec();
        VOLUMES.add(name);
        return name;
    }

    /** docker stop: SIGTERM, up to 60 s for the graceful shutdown, then the exit code. */
    private static void stopGracefully(GenericContainer<?> c) {
        docker.stopContainerCmd(c.getContainerId()).withTimeout(60).exec();
        int exit = waitForExit(c);
        assertTrue(exit == 143 || exit == 0, "the JVM exited on SIGTERM, not killed: exit code " + exit);
        assertTrue(c.getLogs().contains("Graceful shutdown complete"), c.getLogs());
    }

    private static int waitForExit(GenericContainer<?> c) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (System.nanoTime() < deadline) {
            InspectContainerResponse.ContainerState state = docker.inspectContainerCmd(c.getContainerId()).exec().getState();
            if (!Boolean.TRUE.equals(state.getRunning())) {
                return state.getExitCodeLong().intValue();
            }
            sleep(200);
        }
        throw new AssertionError("container still running 60 s after SIGTERM");
    }

    /** The previous run's RocksDB info log (renamed LOG.old.* when the store opened again). */
    private static String lastRocksDbLog(GenericContainer<?> c) throws IOException, InterruptedException {
        var result = c.execInContainer("bash", "-c", "cat \"$(ls -t /var/lib/kvstash/data/LOG.old.* | head -n 1)\"");
        assertEquals(0, result.getExitCode(), result.getStderr());
        return result.getStdout();
    }

    /** The image's own HEALTHCHECK command, run now rather than waiting for Docker's interval. */
    private static void assertHealthCheckPasses(GenericContainer<?> c) throws IOException, InterruptedException {
        List<String> test = docker.inspectImageCmd(IMAGE).exec().getConfig().getHealthcheck().getTest();
        assertEquals("CMD", test.getFirst());
        var result = c.execInContainer(test.subList(1, test.size()).toArray(String[]::new));
        assertEquals(0, result.getExitCode(), "HEALTHCHECK " + test + ": " + result.getStderr());
    }

    private static String baseUrl(GenericContainer<?> c) {
        return "http://" + c.getHost() + ":" + c.getMappedPort(8080);
    }

    private static JsonNode post(String url, String body, int expectedStatus) throws IOException, InterruptedException {
        HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(url))
                .header("content-type", "application/json")
                .timeout(Duration.ofMinutes(2))
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(expectedStatus, r.statusCode(), () -> "POST " + url + ": " + r.body());
        return parse(r.body());
    }

    private static JsonNode get(String url) throws IOException, InterruptedException {
        HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(30)).GET().build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), () -> "GET " + url + ": " + r.body());
        return parse(r.body());
    }

    private static JsonNode parse(String json) {
        try {
            return JSON.readTree(json);
        } catch (IOException e) {
            throw new AssertionError("not JSON: " + json, e);
        }
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }
}
