package io.kvstash.api;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.boot.WebApplicationType;
import org.springframework.boot.builder.SpringApplicationBuilder;

/** A bad setting stops the service at start-up with a message that names the key. */
class ConfigurationValidationTest {
    @TempDir
    Path dir;

    String failure(String... args) throws Exception {
        Path model = Files.writeString(dir.resolve("not-loaded.gguf"), "never opened: validation fails first");
        String[] all = new String[args.length + 1];
        all[0] = "--kvstash.engine.model=" + model;
        System.arraycopy(args, 0, all, 1, args.length);
        return failureWithoutModel(all);
    }

    String failureWithoutModel(String... args) {
        String[] all = new String[args.length + 1];
        all[0] = "--kvstash.store.data-dir=" + dir.resolve("data");
        System.arraycopy(args, 0, all, 1, args.length);
        Throwable t = assertThrows(Throwable.class,
                () -> new SpringApplicationBuilder(KvstashApplication.class).web(WebApplicationType.NONE).run(all).close());
        StringBuilder messages = new StringBuilder();
        for (Throwable c = t; c != null; c = c.getCause()) {
            messages.append(c.getMessage()).append('\n');
        }
        return messages.toString();
    }

    @Test
    void shouldNameTheKeyOfABadValue() throws Exception {
        String m = failure("--kvstash.engine.threads=-1");
        assertTrue(m.contains("kvstash.engine") && m.contains("threads"), m);
        m = failure("--kvstash.engine.kv-format=Q3");
        assertTrue(m.contains("kvstash.engine.kv-format"), m);
        m = failure("--kvstash.engine.sparse.budget-tokens=0");
        assertTrue(m.contains("kvstash.engine.sparse") && m.contains("budgetTokens"), m);
        m = failure("--kvstash.engine.sparse.summary-tokens=24");
        assertTrue(m.contains("kvstash.engine.sparse.summary-tokens"), m);
        m = failure("--kvstash.engine.sparse.scoring=exact");
        assertTrue(m.contains("kvstash.engine.sparse.scoring"), m);
        m = failure("--kvstash.engine.sparse.scoring=best");
        assertTrue(m.contains("kvstash.engine.sparse.scoring"), m);
        m = failure("--kvstash.limits.max-body-size=10B");
        assertTrue(m.contains("kvstash.limits.max-body-size"), m);
        m = failure("--kvstash.sessions.context-policy=forget");
        assertTrue(m.contains("kvstash.sessions.context-policy"), m);
        m = failure("--kvstash.sessions.sink-chunks=-1");
        assertTrue(m.contains("kvstash.sessions") && m.contains("sink"), m);
        m = failure("--kvstash.engine.sparse.park.resident-chunks=-1");
        assertTrue(m.contains("kvstash.engine.sparse.park") && m.contains("residentChunks"), m);
        m = failure("--kvstash.engine.sparse.park.transient-chunks=0");
        assertTrue(m.contains("kvstash.engine.sparse.park") && m.contains("transientChunks"), m);
        m = failure("--kvstash.engine.sparse.park.summary-cache=-1MB");
        assertTrue(m.contains("kvstash.engine.sparse.park") && m.contains("summary-cache"), m);
    }

    @Test
    void shouldNameBothKeysWhenParkingIsOnWithoutSparseDecodeOrWithTheShiftPolicy() throws Exception {
        String m = failure("--kvstash.engine.sparse.park.enabled=true");
        assertTrue(m.contains("kvstash.engine.sparse.park.enabled = true needs kvstash.engine.sparse.enabled = true"), m);
        m = failure("--kvstash.engine.sparse.enabled=true", "--kvstash.engine.sparse.park.enabled=true",
                "--kvstash.sessions.context-policy=shift");
        assertTrue(m.contains("kvstash.engine.sparse.park.enabled = true cannot be combined with kvstash.sessions.context-policy = shift"),
                m);
    }

    @Test
    void shouldNameTheSinkChunksKeyWhenNoChunkIsLeftToShift() throws Exception {
        java.nio.file.Path models = java.nio.file.Path.of(String.valueOf(ServerTest.models()));
        org.junit.jupiter.api.Assumptions.assumeTrue(ServerTest.models() != null && Files.exists(models.resolve(ServerTest.MODEL)),
                "KVSTASH_TEST_MODELS not set: skipping");
        String m = failureWithoutModel("--kvstash.engine.model=" + models.resolve(ServerTest.MODEL), "--kvstash.engine.context-length=128",
                "--kvstash.sessions.context-policy=shift", "--kvstash.sessions.sink-chunks=2");
        assertTrue(m.contains("kvstash.sessions.sink-chunks = 2") && m.contains("kvstash.engine.context-length = 128"), m);
    }

    @Test
    void shouldNameTheRemoteTierKeysAndNotEchoAPassword() throws Exception {
        String m = failure("--kvstash.remote.redis.url=http://user:s3cret@localhost:6379");
        assertTrue(m.contains("kvstash.remote.redis.url"), m);
        assertFalse(m.contains("s3cret"), m);
        m = failure("--kvstash.remote.redis.url=redis://localhost:6379", "--kvstash.remote.redis.timeout=0s");
        assertTrue(m.contains("kvstash.remote.redis.timeout"), m);
        m = failure("--kvstash.remote.redis.url=redis://localhost:6379", "--kvstash.remote.redis.queue-capacity=0");
        assertTrue(m.contains("kvstash.remote.redis.queue-capacity"), m);
    }

    @Test
    void shouldNameTheModelKeyWhenTheFileIsMissing() throws Exception {
        String m = failure("--kvstash.engine.model=" + dir.resolve("missing.gguf"));
        assertTrue(m.contains("kvstash.engine.model"), m);
    }

    @Test
    void shouldNameTheModelKeyWhenNoModelIsSetAndTheDemoModelIsOff() {
        String m = failureWithoutModel("--kvstash.engine.demo-model=false");
        assertTrue(m.contains("kvstash.engine.model is not set (and kvstash.engine.demo-model is false)"), m);
        assertFalse(Files.exists(dir.resolve("data").resolve("models")), "no fetch was attempted");
    }
}
