package io.kvstash.offload;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvstash.offload.testing.RedisServer;
import io.kvstash.persistence.ChunkHeader;
import io.kvstash.persistence.ModelFingerprint;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The Redis tier against a real redis-server (see {@link RedisServer}), and against a refused and a silent port. */
class RedisRemoteTierTest {
    static final ChunkHeader HEADER = new ChunkHeader((byte) 2, 64, new ModelFingerprint(11, 22));
    static RedisServer redis;

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

    static RedisRemoteTier.Config config(String url, Duration timeout, int queue) {
        return new RedisRemoteTier.Config(url, Duration.ofMinutes(5), queue, timeout, Duration.ofSeconds(30), "kvstash-test:");
    }

    static byte[] payload(long seed) {
        byte[] b = new byte[4096];
        new Random(seed).nextBytes(b);
        return b;
    }

    static ChunkKey key(long n) {
        return new ChunkKey(0x1234L, n + System.nanoTime());
    }

    @Test
    void shouldReadBackWrittenChunksWithTheirTtl() throws Exception {
        ChunkKey a = key(1);
        ChunkKey b = key(2);
        ChunkKey absent = key(3);
        try (RedisRemoteTier tier = new RedisRemoteTier(config(redis.url, Duration.ofSeconds(2), 16))) {
            tier.put(a, HEADER, payload(1));
            tier.put(b, HEADER, payload(2));
            assertTrue(tier.awaitWrites(Duration.ofSeconds(10)));
            assertEquals(2, tier.stats().writes());

            List<Optional<byte[]>> got = tier.get(List.of(a, absent, b), HEADER);
            assertArrayEquals(payload(1), got.get(0).orElseThrow());
            assertTrue(got.get(1).isEmpty());
            assertArrayEquals(payload(2), got.get(2).orElseThrow());
            RemoteTier.Stats s = tier.stats();
            assertEquals(2, s.hits());
            assertEquals(1, s.misses());
            assertEquals(0, s.errors());

            long pttl = Long.parseLong(redis.command("PTTL", "kvstash-test:chunk:" + a).substring(1));
            assertTrue(pttl > 0 && pttl <= Duration.ofMinutes(5).toMillis(), "PTTL " + pttl);
        }
    }

    @Test
    void shouldGiveAReadChunkItsTimeToLiveAgain() throws Exception {
        ChunkKey a = key(4);
        ChunkKey unread = key(5);
        try (RedisRemoteTier tier = new RedisRemoteTier(config(redis.url, Duration.ofSeconds(2), 16))) {
            tier.put(a, HEADER, payload(4));
            tier.put(unread, HEADER, payload(5));
            assertTrue(tier.awaitWrites(Duration.ofSeconds(10)));
            // Both have aged to 20 s left; only the one read gets its 5 minutes back.
            redis.command("PEXPIRE", "kvstash-test:chunk:" + a, "20000");
            redis.command("PEXPIRE", "kvstash-test:chunk:" + unread, "20000");
            assertArrayEquals(payload(4), tier.get(List.of(a), HEADER).get(0).orElseThrow());
            long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
            long pttl = 0;
            while (System.nanoTime() < deadline) {
                pttl = Long.parseLong(redis.command("PTTL", "kvstash-test:chunk:" + a).substring(1));
                if (pttl > 20_000) {
                    break;
                }
                Thread.sleep(20);
            }
            assertTrue(pttl > Duration.ofMinutes(4).toMillis() && pttl <= Duration.ofMinutes(5).toMillis(), "PTTL after a read " + pttl);
            long unreadTtl = Long.parseLong(redis.command("PTTL", "kvstash-test:chunk:" + unread).substring(1));
            assertTrue(unreadTtl > 0 && unreadTtl <= 20_000, "PTTL of the chunk nobody read " + unreadTtl);
        }
    }

    @Test
    void shouldTreatAForeignOrCorruptValueAsMissing() throws Exception {
        ChunkKey foreign = key(10);
        ChunkKey corrupt = key(11);
        try (RedisRemoteTier tier = new RedisRemoteTier(config(redis.url, Duration.ofSeconds(2), 16))) {
            // Another model's chunk under one key, and bytes that are no chunk under another.
            tier.put(foreign, new ChunkHeader((byte) 2, 64, new ModelFingerprint(99, 22)), payload(3));
            assertTrue(tier.awaitWrites(Duration.ofSeconds(10)));
            assertTrue(redis.command("SET", "kvstash-test:chunk:" + corrupt, "KVCK but not a chunk value at all").startsWith("+OK"));

            List<Optional<byte[]>> got = tier.get(List.of(foreign, corrupt), HEADER);
            assertTrue(got.get(0).isEmpty(), "another model's chunk is not returned");
            assertTrue(got.get(1).isEmpty(), "a damaged chunk is not returned");
            assertEquals(0, tier.stats().hits());
            assertEquals(2, tier.stats().rejected(), "rejections counted: " + tier.stats());
        }
    }

    @Test
    void shouldAnswerMissingAtOnceAndCountTheFaultWhenRedisRefuses() throws Exception {
        String refused = "redis://127.0.0.1:" + RedisServer.freePort();
        try (RedisRemoteTier tier = new RedisRemoteTier(config(refused, Duration.ofMillis(500), 16))) {
            long t0 = System.nanoTime();
            List<Optional<byte[]>> first = tier.get(List.of(key(1), key(2)), HEADER);
            long firstMillis = (System.nanoTime() - t0) / 1_000_000;
            assertTrue(first.stream().allMatch(Optional::isEmpty));
            assertTrue(firstMillis < 2_000, "first lookup took " + firstMillis + " ms");

            long t1 = System.nanoTime();
            for (int i = 0; i < 100; i++) {
                tier.get(List.of(key(i)), HEADER);
            }
            long restMillis = (System.nanoTime() - t1) / 1_000_000;
            assertTrue(restMillis < 500, "100 lookups while standing aside took " + restMillis + " ms");
            assertEquals(102, tier.stats().errors());

            tier.put(key(5), HEADER, payload(5));
            assertEquals(1, tier.stats().drops(), "a write while standing aside is dropped and counted");
        }
    }

    @Test
    void shouldUseRedisAgainOnceItAnswersAfterTheRetryPeriod() throws Exception {
        int port = RedisServer.freePort();
        RedisRemoteTier.Config c = new RedisRemoteTier.Config("redis://127.0.0.1:" + port, Duration.ofMinutes(5), 16,
                Duration.ofMillis(500), Duration.ofMillis(300), "kvstash-test:");
        try (RedisRemoteTier tier = new RedisRemoteTier(c)) {
            ChunkKey k = key(20);
            assertTrue(tier.get(List.of(k), HEADER).getFirst().isEmpty());
            assertEquals(1, tier.stats().errors());
            try (RedisServer late = RedisServer.startOn(port)) {
                Thread.sleep(400);
                tier.put(k, HEADER, payload(20));
                assertTrue(tier.awaitWrites(Duration.ofSeconds(10)));
                assertArrayEquals(payload(20), tier.get(List.of(k), HEADER).getFirst().orElseThrow(), "read back: " + tier.stats());
                assertEquals(1, tier.stats().errors());
            }
        }
    }

    @Test
    void shouldCostAtMostOneTimeoutWhenRedisNeverAnswers() throws Exception {
        try (RedisServer.Silent silent = new RedisServer.Silent();
             RedisRemoteTier tier = new RedisRemoteTier(config(silent.url(), Duration.ofMillis(300), 16))) {
            long t0 = System.nanoTime();
            for (int i = 0; i < 50; i++) {
                assertTrue(tier.get(List.of(key(i), key(i + 100)), HEADER).stream().allMatch(Optional::isEmpty));
            }
            long millis = (System.nanoTime() - t0) / 1_000_000;
            // One timeout (300 ms) for the first lookup; the other 49 answer at once.
            assertTrue(millis < 1_500, "50 lookups against a silent server took " + millis + " ms");
            assertEquals(100, tier.stats().errors());
            assertTrue(silent.connections() >= 1, "the client did connect");
        }
    }

    @Test
    void shouldDropWritesWhenTheQueueIsFull() throws Exception {
        try (RedisServer.Silent silent = new RedisServer.Silent();
             RedisRemoteTier tier = new RedisRemoteTier(config(silent.url(), Duration.ofMillis(500), 2))) {
            for (int i = 0; i < 10; i++) {
                tier.put(key(i), HEADER, payload(i));
            }
            // While it waits for the silent server the writer holds one batch: the chunk it took plus what it
            // drained right after, at most the queue's 2 (which may have refilled in between); the queue then
            // holds 2 more. So at most 5 of the 10 are not dropped, however the two threads interleave.
            assertTrue(tier.stats().drops() >= 5, "drops " + tier.stats());
            assertTrue(tier.awaitWrites(Duration.ofSeconds(5)));
            RemoteTier.Stats s = tier.stats();
            assertEquals(0, s.writes());
            assertEquals(10, s.drops() + s.writeErrors(), "every chunk is written, dropped or failed: " + s);
        }
    }
}
