package io.kvstash.offload;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The record's encoding and its views of a conversation past the context length. */
class SessionRecordTest {
    static final SessionRecord.Message SYS = new SessionRecord.Message("system", "s");
    static final List<SessionRecord.Message> MESSAGES = List.of(SYS, new SessionRecord.Message("user", "a"),
            new SessionRecord.Message("assistant", "b"), new SessionRecord.Message("user", "c"));

    @Test
    void shouldRoundTripDroppedAndShiftedCountsAndReadFormatOneRecords() {
        int[] tokens = new int[20];
        Arrays.setAll(tokens, i -> 100 + i);
        SessionRecord r = new SessionRecord("id", "t", 1, 2, 3, tokens, 9, List.of(new ChunkKey(1, 2)), new byte[] {7}, MESSAGES, 2, 4, 10);
        assertEquals(r, SessionRecord.decode(r.encode()));

        SessionRecord plain = new SessionRecord("id", "t", 1, 2, 3, tokens, 9, List.of(), null, MESSAGES);
        byte[] v2 = plain.encode();
        // Format 1: the same fields without the three counts at the end.
        byte[] v1 = Arrays.copyOf(v2, v2.length - 12);
        ByteBuffer.wrap(v1).putInt(4, 1);
        assertEquals(plain, SessionRecord.decode(v1));
    }

    @Test
    void shouldViewTheMessagesAndTokensTheKvStandsFor() {
        int[] tokens = new int[20];
        Arrays.setAll(tokens, i -> i);
        SessionRecord r = new SessionRecord("id", "t", 1, 2, 3, tokens, 9, List.of(), null, MESSAGES, 2, 4, 10);
        assertEquals(List.of(SYS, MESSAGES.get(3)), r.heldMessages());
        assertArrayEquals(new int[] {0, 1, 2, 3, 14, 15, 16, 17, 18, 19}, r.kvTokens());
        assertThrows(IllegalArgumentException.class,
                () -> new SessionRecord("id", "t", 1, 2, 3, tokens, 11, List.of(), null, MESSAGES, 0, 4, 10), "KV past the tokens it holds");
        assertThrows(IllegalArgumentException.class,
                () -> new SessionRecord("id", "t", 1, 2, 3, tokens, 0, List.of(), null, MESSAGES, 5, 0, 0), "more dropped than sent");
    }

    @Test
    void shouldNameAShiftedChunkApartFromTheChunkAndFromOtherShifts() {
        ChunkKey k = new ChunkKey(5, 6);
        assertEquals(ChunkKey.shifted(k, -64), ChunkKey.shifted(k, -64));
        assertEquals(false, ChunkKey.shifted(k, -64).equals(ChunkKey.shifted(k, -128)));
        assertEquals(false, ChunkKey.shifted(k, -64).equals(k));
        assertEquals(false, ChunkKey.shifted(ChunkKey.shifted(k, -64), -64).equals(ChunkKey.shifted(k, -128)),
                "moved twice is not moved once: the rounding differs");
    }
}
