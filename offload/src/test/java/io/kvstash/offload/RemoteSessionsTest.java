package io.kvstash.offload;

import static io.kvstash.offload.SessionStoreTest.MODEL;
import static io.kvstash.offload.SessionStoreTest.tokens;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvstash.engine.kv.KvFormat;
import io.kvstash.engine.sampling.SamplingParams;
import io.kvstash.offload.testing.RedisServer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Two "replicas" (engine, hot and warm tier each) sharing one real redis-server; stories15M. */
class RemoteSessionsTest {
    static final long HOT_BYTES = 64L << 20;
    static RedisServer redis;

    @TempDir
    Path dirA;
    @TempDir
    Path dirB;

    @BeforeAll
    static void startRedis() throws Exception {
        redis = RedisServer.start();
    }

    @AfterAll
    static void stopRedis() {
        if (redis != null) {
            redis.close();
        }
    }

    static RedisRemoteTier remote(String url) {
        return new RedisRemoteTier(new RedisRemoteTier.Config(url, Duration.ofMinutes(5), 256, Duration.ofSeconds(2), Duration.ofSeconds(30),
                "kvstash-test-" + System.nanoTime() + ":"));
    }

    static RedisRemoteTier sameNamespace(RedisRemoteTier other) {
        return new RedisRemoteTier(other.config());
    }

    static SessionStore.TurnResult turn(Tiers t, String tenant, String id, int[] tokens, int max) throws Exception {
        return t.sessions.turn(tenant, id, tokens, List.of(), SamplingParams.greedy(), max, true, null).get();
    }

    @Test
    void shouldServeAPrefixComputedOnOneReplicaFromTheSharedTierOnTheOther() throws Exception {
        Path model = Tiers.model(MODEL);
        try (RedisRemoteTier ra = remote(redis.url); RedisRemoteTier rb = sameNamespace(ra);
             Tiers a = new Tiers(model, KvFormat.Q8, dirA, HOT_BYTES, SessionStore.Config.defaults(), ra);
             Tiers b = new Tiers(model, KvFormat.Q8, dirB, HOT_BYTES, SessionStore.Config.defaults(), rb)) {
            int[] prompt = tokens(a.engine, 200, 0);
            SessionStore.TurnResult onA = turn(a, "acme", a.sessions.create("acme").id(), prompt, 8);
            assertEquals(0, onA.remoteChunks());
            assertTrue(ra.awaitWrites(Duration.ofSeconds(10)));
            assertEquals(3, ra.stats().writes(), "A offered the 3 full chunks it computed");

            SessionStore.TurnResult onB = turn(b, "acme", b.sessions.create("acme").id(), prompt, 8);
            assertEquals(3, onB.remoteChunks());
            assertEquals(0, onB.hotChunks() + onB.warmChunks());
            assertEquals(3 * 64, onB.cachedTokens());
            assertArrayEquals(onA.generation().tokens(), onB.generation().tokens(), "prefix reuse changes nothing (invariant 2)");
            assertEquals(3, rb.stats().hits());
            assertEquals(0, rb.stats().writes(), "B computed no full chunk, so it wrote none");
            assertTrue(b.sessions.storedChunks() >= 3, "the fetched chunks went into B's warm tier");

            // Another tenant with the same prompt gets nothing from A's chunks.
            SessionStore.TurnResult other = turn(b, "globex", b.sessions.create("globex").id(), prompt, 8);
            assertEquals(0, other.remoteChunks());
            assertEquals(200, other.computedTokens());
        }
    }

    @Test
    void shouldContinueAnImportedSessionExactlyAsOnTheReplicaThatExportedIt() throws Exception {
        Path model = Tiers.model(MODEL);
        try (RedisRemoteTier ra = remote(redis.url); RedisRemoteTier rb = sameNamespace(ra);
             Tiers a = new Tiers(model, KvFormat.Q8, dirA, HOT_BYTES, SessionStore.Config.defaults(), ra);
             Tiers b = new Tiers(model, KvFormat.Q8, dirB, HOT_BYTES, SessionStore.Config.defaults(), rb)) {
            String id = a.sessions.create("acme").id();
            turn(a, "acme", id, tokens(a.engine, 150, 0), 12);
            assertTrue(ra.awaitWrites(Duration.ofSeconds(10)));
            SessionRecord exported = a.sessions.get("acme", id);
            assertTrue(exported.kvLength() % 64 != 0 && exported.tail().length > 0, "the export carries a tail: " + exported);

            SessionRecord imported = b.sessions.importSession("acme", exported.tokens(), exported.kvLength(), exported.tail(),
                    exported.messages());
            assertNotEquals(id, imported.id());
            assertEquals(exported.chunkKeys(), imported.chunkKeys(), "same tenant, same tokens: the same keys");

            int[] next = Arrays.copyOfRange(tokens(a.engine, 220, 0), 170, 180);
            SessionStore.TurnResult onA = turn(a, "acme", id, next, 10);
            SessionStore.TurnResult onB = turn(b, "acme", imported.id(), next, 10);
            assertArrayEquals(onA.generation().tokens(), onB.generation().tokens(), "resume on B = resume on A (invariant 1)");
            assertEquals(exported.kvLength() / 64, onB.remoteChunks());
            assertEquals(exported.kvLength() % 64, onB.restoredTailTokens());
            assertEquals(onA.cachedTokens(), onB.cachedTokens());

            // Imported by another tenant: keys re-derived under that tenant, so nothing is read; recomputed, same reply.
            SessionRecord foreign = b.sessions.importSession("globex", exported.tokens(), exported.kvLength(), exported.tail(),
                    exported.messages());
            assertTrue(foreign.chunkKeys().stream().noneMatch(exported.chunkKeys()::contains));
            SessionStore.TurnResult onForeign = turn(b, "globex", foreign.id(), next, 10);
            assertEquals(0, onForeign.remoteChunks() + onForeign.restoredTailTokens() + onForeign.hotChunks() + onForeign.warmChunks());
            assertArrayEquals(onA.generation().tokens(), onForeign.generation().tokens());
        }
    }

    @Test
    void shouldRejectAnImportThatDoesNotFit() throws Exception {
        Path model = Tiers.model(MODEL);
        try (Tiers b = new Tiers(model, KvFormat.Q8, dirB, HOT_BYTES, SessionStore.Config.defaults())) {
            int vocabulary = b.engine.tokenizer().vocabularySize();
            assertThrows(IllegalArgumentException.class, () -> b.sessions.importSession("acme", new int[] {1, vocabulary}, 0, null, List.of()));
            assertThrows(IllegalArgumentException.class, () -> b.sessions.importSession("acme", new int[] {1, -1}, 0, null, List.of()));
            assertThrows(IllegalArgumentException.class, () -> b.sessions.importSession("acme", new int[] {1, 2}, 3, null, List.of()));
            // 2 positions of KV past a chunk boundary need a tail of exactly their size.
            assertThrows(IllegalArgumentException.class, () -> b.sessions.importSession("acme", new int[] {1, 2, 3}, 2, new byte[7], List.of()));
            assertThrows(IllegalArgumentException.class, () -> b.sessions.importSession("acme", new int[] {1, 2, 3}, 2, null, List.of()));
            assertThrows(IllegalArgumentException.class, () -> b.sessions.importSession("acme", new int[] {1, 2, 3}, 0, new byte[8], List.of()));
            assertEquals(List.of(), b.sessions.list("acme"), "nothing was stored");
        }
    }

    @Test
    void shouldRecomputeWithBoundedDelayWhenRedisHangsOrIsGone() throws Exception {
        Path model = Tiers.model(MODEL);
        try (RedisServer.Silent silent = new RedisServer.Silent();
             RedisRemoteTier hung = new RedisRemoteTier(new RedisRemoteTier.Config(silent.url(), Duration.ofMinutes(5), 16,
                     Duration.ofMillis(300), Duration.ofSeconds(30), "kvstash-test:"));
             Tiers t = new Tiers(model, KvFormat.Q8, dirA, HOT_BYTES, SessionStore.Config.defaults(), hung)) {
            int[] prompt = tokens(t.engine, 200, 0);
            SessionStore.TurnResult first = turn(t, "acme", t.sessions.create("acme").id(), prompt, 4);
            assertEquals(200, first.computedTokens());
            t.hot().evictAll();
            t.warm.deleteChunks(first.record().chunkKeys().stream().map(ChunkKey::bytes).toList());
            // A cold replica: no hot or warm chunk, Redis hangs; the turn recomputes, and later lookups do not wait at all.
            long t0 = System.nanoTime();
            SessionStore.TurnResult second = turn(t, "acme", t.sessions.create("acme").id(), prompt, 4);
            long millis = (System.nanoTime() - t0) / 1_000_000;
            assertArrayEquals(first.generation().tokens(), second.generation().tokens());
            assertTrue(hung.stats().errors() >= 3, "faults counted: " + hung.stats());
            assertTrue(hung.stats().drops() + hung.stats().writeErrors() >= 3, "writes not done are counted: " + hung.stats());
            assertTrue(millis < 30_000, "turn took " + millis + " ms");
        }
    }
}
