package io.kvstash.persistence;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.stream.Stream;

/**
 * Chunk values in table files or in blob files: write and read throughput and disk bytes for
 * 5,000 chunk-sized values. Not a test (it prints numbers and asserts nothing); run by hand:
 *
 * <pre>
 * ./mvnw -q -pl persistence -am test-compile dependency:build-classpath -Dmdep.outputFile=target/cp.txt
 * java --enable-native-access=ALL-UNNAMED -Xmx2g \
 *   -cp persistence/target/test-classes:persistence/target/classes:$(cat persistence/target/cp.txt) \
 *   io.kvstash.persistence.BlobFilesBenchmark DIR false|true [chunks]
 * </pre>
 *
 * Values are 10–400 KB (uniform), bytes drawn from a Gaussian around 128 with σ = 20, like
 * quantized KV codes: about 6.3 bits of entropy a byte, so LZ4 finds little and ZSTD some.
 * Writes go 8 chunks and a 2 KB session record per batch, as a turn that fills 8 chunks would.
 * Reads are MultiGets of 8 in random order after the block cache was cleared; the OS page cache
 * is not cleared (the data fits in RAM here), so reads measure RocksDB's CPU path, not the SSD.
 */
public final class BlobFilesBenchmark {
    private static final int MIN_VALUE = 10 * 1024;
    private static final int MAX_VALUE = 400 * 1024;
    private static final int BATCH = 8;

    private BlobFilesBenchmark() {
    }

    public static void main(String[] args) throws IOException {
        Path dir = Path.of(args[0]);
        boolean blobFiles = Boolean.parseBoolean(args[1]);
        int chunks = args.length > 2 ? Integer.parseInt(args[2]) : 5_000;
        if (Files.exists(dir)) {
            try (Stream<Path> files = Files.walk(dir)) {
                for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                    Files.delete(p);
                }
            }
        }
        SplittableRandom random = new SplittableRandom(42);
        byte[] pool = new byte[16 << 20];
        for (int i = 0; i < pool.length; i++) {
            pool[i] = (byte) Math.clamp(Math.round(128 + random.nextGaussian() * 20), 0, 255);
        }
        List<byte[]> keys = new ArrayList<>(chunks);
        int[] sizes = new int[chunks];
        int[] offsets = new int[chunks];
        long payloadBytes = 0;
        for (int i = 0; i < chunks; i++) {
            keys.add(TestChunks.key("bench/" + i));
            sizes[i] = random.nextInt(MIN_VALUE, MAX_VALUE + 1);
            offsets[i] = random.nextInt(pool.length - sizes[i]);
            payloadBytes += sizes[i];
        }
        WarmStoreConfig config = WarmStoreConfig.defaults(dir).withBlobFiles(blobFiles);
        System.out.printf("blobFiles=%s chunks=%d payload=%.1f MiB config=%s%n", blobFiles, chunks, mib(payloadBytes), config);
        try (WarmStore store = WarmStore.open(config)) {
            long c0 = cpuNanos();
            long w0 = bytesWritten();
            long t0 = System.nanoTime();
            byte[] session = new byte[2048];
            for (int start = 0; start < chunks; start += BATCH) {
                List<NewChunk> batch = new ArrayList<>(BATCH);
                for (int i = start; i < Math.min(chunks, start + BATCH); i++) {
                    byte[] payload = new byte[sizes[i]];
                    System.arraycopy(pool, offsets[i], payload, 0, sizes[i]);
                    batch.add(new NewChunk(keys.get(i), TestChunks.HEADER, payload));
                }
                store.writeSession(TestChunks.id("session/" + start / BATCH), session, batch);
            }
            long t1 = System.nanoTime();
            store.flush();
            long t2 = System.nanoTime();
            DiskUsage flushed = store.diskUsage();
            store.compact();
            long t3 = System.nanoTime();
            long c3 = cpuNanos();
            long w3 = bytesWritten();
            DiskUsage compacted = store.diskUsage();
            System.out.printf("write: %.1f s (%.0f MiB/s); flush %.1f s; write+flush %.0f MiB/s; compact %.1f s%n",
                    sec(t1 - t0), mib(payloadBytes) / sec(t1 - t0), sec(t2 - t1), mib(payloadBytes) / sec(t2 - t0), sec(t3 - t2));
            System.out.printf("process CPU for write+flush+compact: %.1f s; bytes written to storage %.0f MiB (%.2f of payload)%n",
                    sec(c3 - c0), mib(w3 - w0), (w3 - w0) / (double) payloadBytes);
            System.out.printf("disk after flush: %s = %.1f MiB (%.3f of payload)%n", flushed, mib(flushed.totalBytes()),
                    flushed.totalBytes() / (double) payloadBytes);
            System.out.printf("disk after compact: %s = %.1f MiB (%.3f of payload)%n", compacted, mib(compacted.totalBytes()),
                    compacted.totalBytes() / (double) payloadBytes);
            for (int pass = 1; pass <= 2; pass++) {
                store.clearBlockCache();
                List<Integer> order = new ArrayList<>();
                for (int i = 0; i < chunks; i++) {
                    order.add(i);
                }
                java.util.Collections.shuffle(order, new java.util.Random(pass));
                long rc0 = cpuNanos();
                long r0 = System.nanoTime();
                long read = 0;
                for (int start = 0; start < chunks; start += BATCH) {
                    List<byte[]> batch = new ArrayList<>(BATCH);
                    for (int i = start; i < Math.min(chunks, start + BATCH); i++) {
                        batch.add(keys.get(order.get(i)));
                    }
                    for (Optional<byte[]> got : store.getChunks(batch, TestChunks.HEADER)) {
                        read += got.orElseThrow().length;
                    }
                }
                long r1 = System.nanoTime();
                long rc1 = cpuNanos();
                System.out.printf("read pass %d (block cache cleared): %.1f s (%.0f MiB/s, %.0f chunks/s), CPU %.1f s%n",
                        pass, sec(r1 - r0), mib(read) / sec(r1 - r0), chunks / sec(r1 - r0), sec(rc1 - rc0));
            }
        }
    }

    /** Bytes this process caused to be written to storage ({@code write_bytes} of /proc/self/io; -1 elsewhere). */
    private static long bytesWritten() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/io"))) {
                if (line.startsWith("write_bytes:")) {
                    return Long.parseLong(line.substring("write_bytes:".length()).trim());
                }
            }
        } catch (IOException | RuntimeException e) {
            // not Linux
        }
        return -1;
    }

    /** CPU of the whole process, RocksDB's background threads included. */
    private static long cpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean())
                .getProcessCpuTime();
    }

    private static double mib(long bytes) {
        return bytes / (double) (1 << 20);
    }

    private static double sec(long nanos) {
        return nanos / 1e9;
    }
}
