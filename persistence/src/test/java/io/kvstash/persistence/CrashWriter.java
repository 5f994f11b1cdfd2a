package io.kvstash.persistence;

import java.io.FileOutputStream;
import java.io.FileDescriptor;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The child process of {@link CrashSafetyTest}: writes sessions with new and reused chunks until it
 * is killed, printing {@code ACK <id> END} for each session after its write returned. Not a test.
 *
 * <p>Arguments: store directory, seed, run name (prefix of the ids), sync writes (true/false), blob
 * files (true/false).
 */
public final class CrashWriter {
    static final int MIN_PAYLOAD = 512;
    static final int MAX_PAYLOAD = 32 * 1024;

    private CrashWriter() {
    }

    public static void main(String[] args) {
        Path path = Path.of(args[0]);
        SplittableRandom random = new SplittableRandom(Long.parseLong(args[1]));
        String run = args[2];
        boolean sync = Boolean.parseBoolean(args[3]);
        boolean blobFiles = Boolean.parseBoolean(args[4]);
        // Unbuffered below our own flush: an ACK line leaves the process in one write.
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), false, StandardCharsets.UTF_8);
        WarmStoreConfig config = WarmStoreConfig.defaults(path).withSyncWrites(sync).withBlobFiles(blobFiles)
                .withBlockCacheBytes(8L << 20).withWriteBufferBytes(1L << 20);
        try (WarmStore store = WarmStore.open(config)) {
            List<byte[]> reusable = new ArrayList<>();
            for (int n = 0; ; n++) {
                String id = run + "/" + n;
                List<NewChunk> fresh = new ArrayList<>();
                List<byte[]> refs = new ArrayList<>();
                if (!reusable.isEmpty()) {
                    // A shared prefix: chunks an earlier acknowledged session of this run wrote.
                    for (int r = random.nextInt(3); r > 0; r--) {
                        refs.add(reusable.get(random.nextInt(reusable.size())));
                    }
                }
                for (int f = random.nextInt(1, 6); f > 0; f--) {
                    byte[] key = TestChunks.key(id + "/" + f);
                    fresh.add(new NewChunk(key, TestChunks.HEADER, TestChunks.payloadFor(key, MIN_PAYLOAD, MAX_PAYLOAD)));
                    refs.add(key);
                }
                store.writeSession(TestChunks.id(id), sessionValue(refs), fresh);
                fresh.forEach(c -> reusable.add(c.key()));
                out.print("ACK " + id + " END\n");
                out.flush();
            }
        }
    }

    /** The chunk keys a session refers to: a count, then 16 bytes each. */
    static byte[] sessionValue(List<byte[]> chunkKeys) {
        ByteBuffer value = ByteBuffer.allocate(4 + 16 * chunkKeys.size()).putInt(chunkKeys.size());
        chunkKeys.forEach(value::put);
        return value.array();
    }

    static List<byte[]> chunkKeysOf(byte[] sessionValue) {
        ByteBuffer value = ByteBuffer.wrap(sessionValue);
        int count = value.getInt();
        if (sessionValue.length != 4 + 16 * count) {
            throw new AssertionError("session value of " + sessionValue.length + " bytes for " + count + " keys");
        }
        List<byte[]> keys = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            byte[] key = new byte[16];
            value.get(key);
            keys.add(key);
        }
        return keys;
    }
}
