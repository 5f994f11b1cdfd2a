package io.kvstash.persistence;

import java.util.Arrays;
import java.util.Objects;
import java.util.zip.CRC32C;

/**
 * The bytes of a stored chunk value. All integers are big-endian.
 *
 * <pre>
 * offset size
 *      0    4  magic "KVCK"
 *      4    1  encoding version (2: Q8 keys became channel-major; version 1 chunks read as missing)
 *      5    1  KV format code (the caller's)
 *      6    2  reserved, zero
 *      8    4  token count
 *     12   16  model fingerprint
 *     28    4  payload length
 *     32    4  CRC32C over bytes [0, 32) and the payload
 *     36    n  payload
 * </pre>
 *
 * RocksDB checksums its own blocks too; this CRC covers the value end to end (a value copied by a
 * checkpoint, a future remote tier, a bug in our own batching) and binds the payload to the header
 * that says which model and format it belongs to.
 */
public final class ChunkCodec {
    public static final int MAGIC = 0x4B56434B; // "KVCK"
    public static final byte VERSION = 2;
    static final int HEADER_BYTES = 32;
    /** Header and checksum: where the payload starts. */
    public static final int PREFIX_BYTES = HEADER_BYTES + 4;

    private ChunkCodec() {
    }

    /** The result of decoding a stored value. */
    public sealed interface Decoded permits Valid, Rejected {
    }

    /** The value was intact and is the expected chunk. */
    public record Valid(byte[] payload) implements Decoded {
    }

    /** The value must be treated as missing; {@code detail} says what was found. */
    public record Rejected(ChunkDefect defect, String detail) implements Decoded {
    }

    public static byte[] encode(ChunkHeader header, byte[] payload) {
        Objects.requireNonNull(header, "chunk header");
        Objects.requireNonNull(payload, "chunk payload");
        if (payload.length > Integer.MAX_VALUE - PREFIX_BYTES) {
            throw new IllegalArgumentException("chunk payload too large: " + payload.length + " bytes");
        }
        byte[] out = new byte[PREFIX_BYTES + payload.length];
        writeInt(out, 0, MAGIC);
        out[4] = VERSION;
        out[5] = header.kvFormat();
        // out[6..8) reserved, zero
        writeInt(out, 8, header.tokenCount());
        ModelFingerprint.writeLong(out, 12, header.modelFingerprint().high());
        ModelFingerprint.writeLong(out, 20, header.modelFingerprint().low());
        writeInt(out, 28, payload.length);
        System.arraycopy(payload, 0, out, PREFIX_BYTES, payload.length);
        writeInt(out, HEADER_BYTES, checksum(out, payload.length));
        return out;
    }

    /**
     * Verifies {@code value} completely (framing, version, checksum) and then that it is the chunk
     * the caller expects; returns the payload only if all of that holds.
     */
    public static Decoded decode(byte[] value, ChunkHeader expected) {
        Objects.requireNonNull(value, "stored value");
        Objects.requireNonNull(expected, "expected chunk header");
        Rejected rejected = check(i -> value[(int) i], value.length, expected, declared -> checksum(value, declared));
        return rejected != null ? rejected : new Valid(Arrays.copyOfRange(value, PREFIX_BYTES, value.length));
    }

    /**
     * {@link #decode} of the first {@code length} bytes of {@code value} (a reused read buffer),
     * without copying: null when they are intact and the expected chunk (the payload then starts at
     * {@link #PREFIX_BYTES}), else what is wrong with them.
     */
    public static Rejected verify(byte[] value, int length, ChunkHeader expected) {
        Objects.requireNonNull(value, "stored value");
        Objects.requireNonNull(expected, "expected chunk header");
        if (length < 0 || length > value.length) {
            throw new IllegalArgumentException("length " + length + " outside a buffer of " + value.length + " bytes");
        }
        return check(i -> value[(int) i], length, expected, declared -> checksum(value, declared));
    }

    private interface ByteAt {
        byte at(long index);
    }

    private interface PayloadChecksum {
        int of(int payloadLength);
    }

    private static Rejected check(ByteAt b, long length, ChunkHeader expected, PayloadChecksum crc) {
        if (length < PREFIX_BYTES) {
            return new Rejected(ChunkDefect.TRUNCATED, length + " bytes, shorter than the " + PREFIX_BYTES + "-byte header");
        }
        int magic = readInt(b, 0);
        if (magic != MAGIC) {
            return new Rejected(ChunkDefect.BAD_MAGIC, String.format("magic 0x%08x", magic));
        }
        if (b.at(4) != VERSION) {
            return new Rejected(ChunkDefect.UNKNOWN_VERSION, "encoding version " + (b.at(4) & 0xFF));
        }
        if (b.at(6) != 0 || b.at(7) != 0) {
            return new Rejected(ChunkDefect.RESERVED_BITS_SET, String.format("reserved bytes 0x%02x%02x", b.at(6), b.at(7)));
        }
        int declared = readInt(b, 28);
        long actual = length - PREFIX_BYTES;
        if (declared < 0 || declared > actual) {
            return new Rejected(ChunkDefect.TRUNCATED, "payload length " + declared + ", " + actual + " bytes present");
        }
        if (declared < actual) {
            return new Rejected(ChunkDefect.TRAILING_BYTES, "payload length " + declared + ", " + actual + " bytes present");
        }
        int stored = readInt(b, HEADER_BYTES);
        int computed = crc.of(declared);
        if (stored != computed) {
            return new Rejected(ChunkDefect.CHECKSUM_MISMATCH, String.format("CRC32C stored 0x%08x, computed 0x%08x", stored, computed));
        }
        // Identity is checked only on an intact value, so a mismatch here is a real mismatch.
        ModelFingerprint model = new ModelFingerprint(readLong(b, 12), readLong(b, 20));
        if (!model.equals(expected.modelFingerprint())) {
            return new Rejected(ChunkDefect.MODEL_MISMATCH, "model " + model + ", expected " + expected.modelFingerprint());
        }
        if (b.at(5) != expected.kvFormat()) {
            return new Rejected(ChunkDefect.FORMAT_MISMATCH, "KV format code " + (b.at(5) & 0xFF) + ", expected " + (expected.kvFormat() & 0xFF));
        }
        int tokens = readInt(b, 8);
        if (tokens != expected.tokenCount()) {
            return new Rejected(ChunkDefect.TOKEN_COUNT_MISMATCH, tokens + " tokens, expected " + expected.tokenCount());
        }
        return null;
    }

    private static int readInt(ByteAt b, long at) {
        return (b.at(at) & 0xFF) << 24 | (b.at(at + 1) & 0xFF) << 16 | (b.at(at + 2) & 0xFF) << 8 | (b.at(at + 3) & 0xFF);
    }

    private static long readLong(ByteAt b, long at) {
        return (long) readInt(b, at) << 32 | (readInt(b, at + 4) & 0xFFFFFFFFL);
    }

    private static int checksum(byte[] value, int payloadLength) {
        CRC32C crc = new CRC32C();
        crc.update(value, 0, HEADER_BYTES);
        crc.update(value, PREFIX_BYTES, payloadLength);
        return (int) crc.getValue();
    }

    private static void writeInt(byte[] b, int at, int v) {
        b[at] = (byte) (v >>> 24);
        b[at + 1] = (byte) (v >>> 16);
        b[at + 2] = (byte) (v >>> 8);
        b[at + 3] = (byte) v;
    }
}
