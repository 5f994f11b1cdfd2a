package io.kvstash.persistence;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.SplittableRandom;

/** Deterministic chunk keys and payloads: a payload can be checked again from its key alone. */
final class TestChunks {
    static final ModelFingerprint MODEL = new ModelFingerprint(0x0123456789abcdefL, 0xfedcba9876543210L);
    static final ChunkHeader HEADER = new ChunkHeader((byte) 4, 64, MODEL);

    private TestChunks() {
    }

    /** 16 bytes: SHA-256 of the name, truncated, like the engine's chunk keys. */
    static byte[] key(String name) {
        try {
            byte[] digest = MessageDigest.getInstance("SHA-256").digest(name.getBytes(StandardCharsets.UTF_8));
            return Arrays.copyOf(digest, 16);
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }

    static byte[] id(String name) {
        return name.getBytes(StandardCharsets.UTF_8);
    }

    /** The payload that belongs to {@code key}: its length and bytes both derive from the key. */
    static byte[] payloadFor(byte[] key, int minBytes, int maxBytes) {
        long seed = ModelFingerprint.readLong(key, 0);
        SplittableRandom random = new SplittableRandom(seed);
        byte[] payload = new byte[random.nextInt(minBytes, maxBytes + 1)];
        // Quantized-code-like: 4 random bits a byte around a centre, so compressible to about half.
        long bits = 0;
        for (int i = 0; i < payload.length; i++) {
            if ((i & 15) == 0) {
                bits = random.nextLong();
            }
            payload[i] = (byte) (120 + (bits & 15));
            bits >>>= 4;
        }
        return payload;
    }

    static byte[] payloadFor(byte[] key) {
        return payloadFor(key, 1024, 8192);
    }

    static NewChunk chunk(String name) {
        byte[] key = key(name);
        return new NewChunk(key, HEADER, payloadFor(key));
    }
}
