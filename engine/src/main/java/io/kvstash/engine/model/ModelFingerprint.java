package io.kvstash.engine.model;

import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.gguf.GgufTensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;

/**
 * 16 bytes naming a model's KV: stored chunks carry it, and a chunk computed with another model is
 * never used. SHA-256 (truncated) over the hyper-parameters that shape the KV (architecture,
 * dimensions, rope) and every tensor's name, type, shape and a sample of its bytes (the first and
 * last 256 and the middle 256 of each tensor): files that differ only in weight values — two
 * fine-tunes of one base — almost always differ in those samples, and hashing every byte of a
 * multi-gigabyte file would slow loading down for nothing. Stable across processes and machines.
 */
public record ModelFingerprint(byte[] bytes) {
    public static final int BYTES = 16;
    private static final int SAMPLE = 256;

    public ModelFingerprint {
        if (bytes.length != BYTES) {
            throw new IllegalArgumentException("a model fingerprint is " + BYTES + " bytes, got " + bytes.length);
        }
        bytes = bytes.clone();
    }

    @Override
    public byte[] bytes() {
        return bytes.clone();
    }

    public static ModelFingerprint of(GgufFile file, ModelConfig config) {
        MessageDigest sha;
        try {
            sha = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", e);
        }
        sha.update("kvstash-model-fingerprint-v1\n".getBytes(StandardCharsets.UTF_8));
        sha.update(config.toString().getBytes(StandardCharsets.UTF_8));
        List<GgufTensor> tensors = new ArrayList<>(file.tensors().values());
        tensors.sort((a, b) -> a.name().compareTo(b.name()));
        for (GgufTensor t : tensors) {
            sha.update(("\n" + t.name() + ":" + t.type() + ":" + Arrays.toString(t.dims())).getBytes(StandardCharsets.UTF_8));
            MemorySegment d = t.data();
            long size = d.byteSize();
            sample(sha, d, 0, size);
            sample(sha, d, Math.max(0, size / 2 - SAMPLE / 2), size);
            sample(sha, d, Math.max(0, size - SAMPLE), size);
        }
        return new ModelFingerprint(Arrays.copyOf(sha.digest(), BYTES));
    }

    private static void sample(MessageDigest sha, MemorySegment d, long from, long size) {
        int n = (int) Math.min(SAMPLE, size - from);
        if (n > 0) {
            byte[] b = new byte[n];
            MemorySegment.copy(d, ValueLayout.JAVA_BYTE, from, b, 0, n);
            sha.update(b);
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ModelFingerprint f && Arrays.equals(bytes, f.bytes);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(bytes);
    }

    @Override
    public String toString() {
        return HexFormat.of().formatHex(bytes);
    }
}
