package io.kvstash.persistence;

import java.util.HexFormat;
import java.util.Objects;

/**
 * The 128-bit fingerprint of the model a chunk was computed with, as two big-endian halves so that
 * equality is a record's. A chunk from another model is never returned as data.
 */
public record ModelFingerprint(long high, long low) {
    public static final int BYTES = 16;

    /** The fingerprint whose big-endian bytes are {@code bytes} (exactly {@value #BYTES}). */
    public static ModelFingerprint of(byte[] bytes) {
        Objects.requireNonNull(bytes, "model fingerprint bytes");
        if (bytes.length != BYTES) {
            throw new IllegalArgumentException("model fingerprint must be " + BYTES + " bytes, got " + bytes.length);
        }
        return new ModelFingerprint(readLong(bytes, 0), readLong(bytes, 8));
    }

    public byte[] toBytes() {
        byte[] out = new byte[BYTES];
        writeLong(out, 0, high);
        writeLong(out, 8, low);
        return out;
    }

    @Override
    public String toString() {
        return HexFormat.of().formatHex(toBytes());
    }

    static long readLong(byte[] b, int at) {
        long v = 0;
        for (int i = 0; i < 8; i++) {
            v = (v << 8) | (b[at + i] & 0xFF);
        }
        return v;
    }

    static void writeLong(byte[] b, int at, long v) {
        for (int i = 7; i >= 0; i--) {
            b[at + i] = (byte) v;
            v >>>= 8;
        }
    }
}
