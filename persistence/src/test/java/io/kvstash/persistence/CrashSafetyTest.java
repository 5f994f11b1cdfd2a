package io.kvstash.persistence;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.rocksdb.util.Environment;

/**
 * Invariant 4 at the storage level: a writer process killed with SIGKILL at a random moment loses
 * nothing it acknowledged, and no stored session refers to a chunk that is missing or damaged.
 * Every run reuses the same directory, so recovery also follows recoveries.
 */
class CrashSafetyTest {
    private static final int RUNS = 20;
    private static final Pattern ACK = Pattern.compile("ACK (\\S+) END");

    @TempDir
    Path dir;

    @Test
    void shouldKeepEveryAcknowledgedSessionWhenWriterIsKilled() throws Exception {
        Path store = dir.resolve("store");
        Path nativeDir = extractNativeLibrary();
        SplittableRandom delays = new SplittableRandom(20261124);
        Set<String> acknowledged = new HashSet<>();
        int sessionsSeen = 0;
        long startupNanos = 0;
        long verifyNanos = 0;
        for (int run = 0; run < RUNS; run++) {
            long t0 = System.nanoTime();
            long seed = 1000 + run;
            boolean sync = run % 4 == 3; // mostly the default (no fsync): a process crash must not need it
            boolean blobFiles = run % 2 == 0; // both layouts, switching on the same directory
            Path stderr = dir.resolve("writer-" + run + ".err");
            Process writer = new ProcessBuilder(
                    Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "--enable-native-access=ALL-UNNAMED", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
                    "-Djava.library.path=" + nativeDir,
                    "-cp", System.getProperty("java.class.path"),
                    CrashWriter.class.getName(), store.toString(), Long.toString(seed), "r" + run, Boolean.toString(sync), Boolean.toString(blobFiles))
                    .redirectError(stderr.toFile())
                    .start();
            writer.getOutputStream().close();
            List<String> acks = new ArrayList<>();
            CountDownLatch firstAck = new CountDownLatch(1);
            Thread drain = Thread.ofPlatform().start(() -> readAcks(writer.getInputStream(), acks, firstAck));
            if (!firstAck.await(30, TimeUnit.SECONDS)) {
                writer.destroyForcibly().waitFor();
                fail("run " + run + ": writer acknowledged nothing in 30 s; stderr:\n" + Files.readString(stderr));
            }
            startupNanos += System.nanoTime() - t0;
            Thread.sleep(delays.nextInt(0, 250));
            writer.destroyForcibly();
            assertTrue(writer.waitFor(30, TimeUnit.SECONDS), "killed writer did not exit");
            drain.join();
            assertNotEquals(0, writer.exitValue(), "the writer must have been killed, not have stopped: "
                    + Files.readString(stderr));
            synchronized (acks) {
                acknowledged.addAll(acks);
            }
            long t1 = System.nanoTime();
            // Each run checks its own sessions deeply; the last run checks everything again.
            sessionsSeen = verify(store, acknowledged, run, run == RUNS - 1 ? "" : "r" + run + "/");
            verifyNanos += System.nanoTime() - t1;
        }
        System.out.printf("crash safety: %d kills, %d sessions acknowledged, %d stored; writer start to first ACK %d ms, verification %d ms in all%n",
                RUNS, acknowledged.size(), sessionsSeen, startupNanos / 1_000_000, verifyNanos / 1_000_000);
        assertTrue(acknowledged.size() >= RUNS, "every run acknowledged at least one session");
        assertTrue(sessionsSeen >= acknowledged.size(), "the final check saw " + sessionsSeen + " sessions");
    }

    /** Collects complete ACK lines; a line cut by the kill has no END and does not count. */
    private static void readAcks(InputStream stdout, List<String> acks, CountDownLatch firstAck) {
        try (BufferedReader lines = new BufferedReader(new InputStreamReader(stdout, StandardCharsets.UTF_8))) {
            for (String line; (line = lines.readLine()) != null; ) {
                Matcher m = ACK.matcher(line);
                if (m.matches()) {
                    synchronized (acks) {
                        acks.add(m.group(1));
                    }
                    firstAck.countDown();
                }
            }
        } catch (IOException e) {
            // the pipe breaks when the writer dies: what was read is what counts
        }
    }

    /**
     * Opens the store as a restarted server would, checks that every acknowledged session is there,
     * and checks every stored session whose id starts with {@code prefix} (acknowledged or caught
     * in flight) and every chunk it refers to. Returns the number of sessions checked.
     */
    private static int verify(Path path, Set<String> acknowledged, int run, String prefix) {
        try (WarmStore store = WarmStore.open(WarmStoreConfig.defaults(path).withBlockCacheBytes(8L << 20))) {
            for (String id : acknowledged) {
                assertTrue(store.getSession(TestChunks.id(id)).isPresent(), "run " + run + ": acknowledged session " + id + " lost");
            }
            int sessions = 0;
            try (SessionScan scan = store.scanSessions(prefix.isEmpty() ? null : TestChunks.id(prefix))) {
                while (scan.hasNext()) {
                    byte[] id = scan.next();
                    if (!new String(id, StandardCharsets.UTF_8).startsWith(prefix)) {
                        break;
                    }
                    List<byte[]> keys = CrashWriter.chunkKeysOf(store.getSession(id).orElseThrow());
                    List<Optional<byte[]>> chunks = store.getChunks(keys, TestChunks.HEADER);
                    for (int i = 0; i < keys.size(); i++) {
                        String where = "run " + run + ": session " + new String(id, StandardCharsets.UTF_8) + " chunk " + i;
                        assertTrue(chunks.get(i).isPresent(), where + " missing or damaged");
                        assertArrayEquals(TestChunks.payloadFor(keys.get(i), CrashWriter.MIN_PAYLOAD, CrashWriter.MAX_PAYLOAD),
                                chunks.get(i).get(), where + " has other bytes");
                    }
                    sessions++;
                }
            }
            assertEquals(0, store.rejectedChunkReads(), "run " + run + ": damaged chunks");
            return sessions;
        }
    }

    /** The JNI library once into the temp dir, so killed children leave no extracted copies in /tmp. */
    private Path extractNativeLibrary() throws IOException {
        Path nativeDir = Files.createDirectories(dir.resolve("native"));
        String file = Environment.getJniLibraryFileName("rocksdb");
        try (InputStream in = org.rocksdb.RocksDB.class.getResourceAsStream("/" + file)) {
            if (in == null) {
                fail("no " + file + " in the rocksdbjni jar for this platform");
            }
            Files.copy(in, nativeDir.resolve(file), StandardCopyOption.REPLACE_EXISTING);
        }
        return nativeDir;
    }
}
