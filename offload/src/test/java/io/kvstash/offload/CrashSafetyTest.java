package io.kvstash.offload;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvstash.engine.kv.KvCache;
import io.kvstash.engine.kv.KvFormat;
import io.kvstash.engine.sampling.SamplingParams;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Kills a process that is writing sessions ({@code kill -9}, at random moments, 20 times on the
 * same store) and checks after each kill that every acknowledged turn is there: the session's
 * record has at least the acknowledged tokens, every chunk it lists is present and passes its
 * checksum, and the session takes another turn.
 */
class CrashSafetyTest {
    @TempDir
    Path dir;

    @Test
    void shouldKeepEveryAcknowledgedTurnWhenTheProcessIsKilledAtRandomMoments() throws Exception {
        Path model = Tiers.model("stories260K-f32.gguf");
        Path store = dir.resolve("store");
        Random random = new Random(20261124);
        Map<String, int[]> acked = new HashMap<>(); // id -> {tokens, version}
        int kills = 20;
        for (int round = 0; round < kills; round++) {
            List<String> command = new ArrayList<>();
            command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
            command.add("--add-modules");
            command.add("jdk.incubator.vector");
            command.add("--enable-native-access=ALL-UNNAMED");
            command.add("-Xmx256m");
            command.add("-cp");
            command.add(System.getProperty("java.class.path"));
            command.add(CrashChild.class.getName());
            command.add(model.toString());
            command.add(store.toString());
            command.add(Long.toString(random.nextLong()));
            Process p = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.DISCARD).start();
            BlockingQueue<String> lines = new LinkedBlockingQueue<>();
            Thread reader = Thread.ofPlatform().daemon().start(() -> {
                try (BufferedReader in = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                    for (String line; (line = in.readLine()) != null; ) {
                        lines.add(line);
                    }
                } catch (java.io.IOException e) {
                    // the process died
                }
            });
            // Kill at a random moment after the first acknowledged turn (a cold JVM on a busy
            // machine may take seconds to get there).
            List<String> seen = new ArrayList<>();
            String line = lines.poll(60, TimeUnit.SECONDS);
            assertEquals("READY", line, "round " + round + ": the child did not start");
            while ((line = lines.poll(60, TimeUnit.SECONDS)) != null) {
                seen.add(line);
                if (line.startsWith("ACK ")) {
                    break;
                }
            }
            Thread.sleep(random.nextInt(1500));
            p.destroyForcibly();
            assertTrue(p.waitFor(30, TimeUnit.SECONDS));
            reader.join(10_000);
            lines.drainTo(seen);
            int ackedThisRound = 0;
            for (String l : seen) {
                String line2 = l;
                String[] f = line2.split(" ");
                if (f[0].equals("ACK")) {
                    acked.put(f[1], new int[] {Integer.parseInt(f[2]), Integer.parseInt(f[3])});
                    ackedThisRound++;
                }
            }
            System.out.println("kill " + round + ": " + ackedThisRound + " turns acknowledged, " + acked.size() + " sessions so far");
            verify(model, store, acked, round == kills - 1);
        }
        assertTrue(acked.size() >= kills, "only " + acked.size() + " sessions were acknowledged: the kills came too early to test much");
    }

    private static void verify(Path model, Path store, Map<String, int[]> acked, boolean takeTurns) throws Exception {
        try (Tiers t = new Tiers(model, KvFormat.KIVI4, store, 16L << 20, SessionStore.Config.defaults())) {
            for (Map.Entry<String, int[]> e : acked.entrySet()) {
                SessionRecord r = t.sessions.get("crash", e.getKey());
                assertTrue(r.version() >= e.getValue()[1], e.getKey() + ": version " + r.version() + " < acknowledged " + e.getValue()[1]);
                assertTrue(r.tokens().length >= e.getValue()[0], e.getKey() + ": " + r.tokens().length + " tokens < acknowledged " + e.getValue()[0]);
                // Every listed chunk is present and valid: resuming takes them all from the warm tier.
                int[] history = java.util.Arrays.copyOf(r.tokens(), r.tokens().length + 1);
                history[history.length - 1] = 5;
                SessionStore.Resumed res = t.sessions.resume("crash", r, history);
                try (KvCache cache = res.cache()) {
                    assertEquals(r.chunkKeys().size(), res.hotChunks() + res.warmChunks(), e.getKey() + ": a listed chunk is missing or corrupt");
                    assertEquals(r.kvLength(), cache.length(), e.getKey() + ": resumed KV length");
                }
            }
            if (takeTurns) {
                for (String id : acked.keySet().stream().limit(5).toList()) {
                    t.sessions.turn("crash", id, new int[] {7, 8}, List.of(), SamplingParams.greedy(), 2, true, null).get();
                }
            }
        }
    }
}
