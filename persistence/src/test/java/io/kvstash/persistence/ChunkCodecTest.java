package io.kvstash.persistence;

import static io.kvstash.persistence.TestChunks.HEADER;
import static io.kvstash.persistence.TestChunks.MODEL;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** Framing, checksum and identity checks of {@link ChunkCodec}. */
class ChunkCodecTest {
    private static final byte[] PAYLOAD = TestChunks.payloadFor(TestChunks.key("codec"), 300, 300);

    private static ChunkDefect defectOf(byte[] value, ChunkHeader expected) {
        return assertInstanceOf(ChunkCodec.Rejected.class, ChunkCodec.decode(value, expected)).defect();
    }

    @Test
    void shouldReturnPayloadWhenValueIsIntactAndExpected() {
        byte[] value = ChunkCodec.encode(HEADER, PAYLOAD);
        assertEquals(ChunkCodec.PREFIX_BYTES + PAYLOAD.length, value.length);
        ChunkCodec.Valid valid = assertInstanceOf(ChunkCodec.Valid.class, ChunkCodec.decode(value, HEADER));
        assertArrayEquals(PAYLOAD, valid.payload());
    }

    @Test
    void shouldRoundTripEmptyPayloadAndExtremeHeaderValues() {
        ChunkHeader odd = new ChunkHeader((byte) 0xFF, Integer.MAX_VALUE, new ModelFingerprint(-1, Long.MIN_VALUE));
        byte[] value = ChunkCodec.encode(odd, new byte[0]);
        assertArrayEquals(new byte[0], assertInstanceOf(ChunkCodec.Valid.class, ChunkCodec.decode(value, odd)).payload());
    }

    @Test
    void shouldStartWithDocumentedLayoutWhenEncoding() {
        byte[] value = ChunkCodec.encode(HEADER, PAYLOAD);
        assertArrayEquals("KVCK".getBytes(), Arrays.copyOf(value, 4));
        assertEquals(2, value[4], "encoding version 2");
        assertEquals(HEADER.kvFormat(), value[5]);
        assertEquals(64, value[11]);
        assertArrayEquals(MODEL.toBytes(), Arrays.copyOfRange(value, 12, 28));
        assertEquals(PAYLOAD.length, (value[30] & 0xFF) << 8 | (value[31] & 0xFF));
    }

    @Test
    void shouldRejectWhenAnySingleByteIsFlipped() {
        byte[] value = ChunkCodec.encode(HEADER, PAYLOAD);
        for (int i = 0; i < value.length; i++) {
            for (int mask : new int[] {0x01, 0x80, 0xFF}) {
                byte[] damaged = value.clone();
                damaged[i] ^= (byte) mask;
                assertInstanceOf(ChunkCodec.Rejected.class, ChunkCodec.decode(damaged, HEADER),
                        "byte " + i + " xor 0x" + Integer.toHexString(mask) + " must be caught");
            }
        }
    }

    @Test
    void shouldVerifyInPlaceAsDecodeDoesWhenValueSitsInLargerBuffer() {
        byte[] value = ChunkCodec.encode(HEADER, PAYLOAD);
        byte[] buffer = new byte[value.length + 50];
        Arrays.fill(buffer, (byte) 0x33);
        System.arraycopy(value, 0, buffer, 0, value.length);
        assertEquals(null, ChunkCodec.verify(buffer, value.length, HEADER), "intact, trailing buffer bytes ignored");
        assertEquals(ChunkDefect.TRAILING_BYTES, ChunkCodec.verify(buffer, value.length + 1, HEADER).defect());
        assertEquals(ChunkDefect.TRUNCATED, ChunkCodec.verify(buffer, value.length - 1, HEADER).defect());
        ChunkHeader otherModel = new ChunkHeader(HEADER.kvFormat(), HEADER.tokenCount(), new ModelFingerprint(7, 7));
        assertEquals(ChunkDefect.MODEL_MISMATCH, ChunkCodec.verify(buffer, value.length, otherModel).defect());
        for (int i = 0; i < value.length; i += 7) {
            byte[] damaged = buffer.clone();
            damaged[i] ^= 0x01;
            byte[] exact = Arrays.copyOf(damaged, value.length);
            assertEquals(defectOf(exact, HEADER), ChunkCodec.verify(damaged, value.length, HEADER).defect(), "byte " + i);
        }
        assertThrows(IllegalArgumentException.class, () -> ChunkCodec.verify(value, value.length + 1, HEADER));
    }

    @Test
    void shouldRejectAsChecksumMismatchWhenPayloadOrCrcIsDamaged() {
        byte[] value = ChunkCodec.encode(HEADER, PAYLOAD);
        byte[] payloadHit = value.clone();
        payloadHit[ChunkCodec.PREFIX_BYTES + 100] ^= 0x10;
        assertEquals(ChunkDefect.CHECKSUM_MISMATCH, defectOf(payloadHit, HEADER));
        byte[] crcHit = value.clone();
        crcHit[33] ^= 0x01;
        assertEquals(ChunkDefect.CHECKSUM_MISMATCH, defectOf(crcHit, HEADER));
        byte[] tokenHit = value.clone();
        tokenHit[11] ^= 0x01; // a header field: caught by the checksum, not reported as a token mismatch
        assertEquals(ChunkDefect.CHECKSUM_MISMATCH, defectOf(tokenHit, HEADER));
    }

    @Test
    void shouldRejectAsTruncatedWhenValueIsCutAnywhere() {
        byte[] value = ChunkCodec.encode(HEADER, PAYLOAD);
        for (int length = 0; length < value.length; length++) {
            assertEquals(ChunkDefect.TRUNCATED, defectOf(Arrays.copyOf(value, length), HEADER), "length " + length);
        }
    }

    @Test
    void shouldRejectWhenBytesTrailThePayload() {
        byte[] value = ChunkCodec.encode(HEADER, PAYLOAD);
        assertEquals(ChunkDefect.TRAILING_BYTES, defectOf(Arrays.copyOf(value, value.length + 1), HEADER));
    }

    @Test
    void shouldRejectWhenMagicVersionOrReservedBytesAreWrong() {
        byte[] value = ChunkCodec.encode(HEADER, PAYLOAD);
        byte[] magic = value.clone();
        magic[0] = 'X';
        assertEquals(ChunkDefect.BAD_MAGIC, defectOf(magic, HEADER));
        byte[] version = value.clone();
        version[4] = (byte) (ChunkCodec.VERSION + 1);
        assertEquals(ChunkDefect.UNKNOWN_VERSION, defectOf(version, HEADER));
        byte[] reserved = value.clone();
        reserved[7] = 1;
        assertEquals(ChunkDefect.RESERVED_BITS_SET, defectOf(reserved, HEADER));
        assertEquals(ChunkDefect.BAD_MAGIC, defectOf(PAYLOAD, HEADER), "a raw payload is not a chunk value");
    }

    @Test
    void shouldRejectWhenIntactChunkIsNotTheExpectedOne() {
        byte[] value = ChunkCodec.encode(HEADER, PAYLOAD);
        ModelFingerprint other = new ModelFingerprint(MODEL.high(), MODEL.low() ^ 1);
        assertEquals(ChunkDefect.MODEL_MISMATCH, defectOf(value, new ChunkHeader(HEADER.kvFormat(), 64, other)));
        assertEquals(ChunkDefect.FORMAT_MISMATCH, defectOf(value, new ChunkHeader((byte) 5, 64, MODEL)));
        assertEquals(ChunkDefect.TOKEN_COUNT_MISMATCH, defectOf(value, new ChunkHeader(HEADER.kvFormat(), 63, MODEL)));
    }

    @Test
    void shouldRefuseBadArgumentsWhenBuildingHeaders() {
        IllegalArgumentException tokens = assertThrows(IllegalArgumentException.class, () -> new ChunkHeader((byte) 1, 0, MODEL));
        assertEquals("chunk token count must be at least 1, got 0", tokens.getMessage());
        IllegalArgumentException fingerprint = assertThrows(IllegalArgumentException.class, () -> ModelFingerprint.of(new byte[15]));
        assertEquals("model fingerprint must be 16 bytes, got 15", fingerprint.getMessage());
        assertEquals(MODEL, ModelFingerprint.of(MODEL.toBytes()));
        assertEquals("0123456789abcdeffedcba9876543210", MODEL.toString());
    }
}
