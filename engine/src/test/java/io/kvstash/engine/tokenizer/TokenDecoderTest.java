package io.kvstash.engine.tokenizer;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Streaming decoding: characters split over byte tokens, invalid bytes, and agreement with whole-text decoding. */
class TokenDecoderTest {
    private final TinyVocabulary vocabulary = new TinyVocabulary().piece("▁", -1).piece("a", -2).piece("▁a", -3).userDefined("<tag>");
    private final SentencePieceTokenizer tokenizer = vocabulary.tokenizer();

    private static int b(int value) {
        return TinyVocabulary.byteToken(value);
    }

    @Test
    void shouldHoldByteTokensWhenCharacterIsIncomplete() {
        TokenDecoder decoder = tokenizer.newDecoder();
        assertEquals("a", decoder.next(vocabulary.id("a")));
        assertEquals("", decoder.next(b(0xF0)));
        assertEquals("", decoder.next(b(0x9F)));
        assertEquals("", decoder.next(b(0x99)));
        assertEquals("🙂", decoder.next(b(0x82)));
        assertEquals(" a", decoder.next(vocabulary.id("▁a")));
        assertEquals("", decoder.flush());
    }

    @Test
    void shouldEmitHeldBytesTogetherWhenNextPieceCompletesThem() {
        TokenDecoder decoder = tokenizer.newDecoder();
        assertEquals("", decoder.next(b(0xC3)));
        assertEquals("é", decoder.next(b(0xA9)));
        assertEquals("", decoder.next(b(0xE2)));
        assertEquals("\uFFFDa", decoder.next(vocabulary.id("a")));
    }

    @Test
    void shouldReplaceHeldBytesWhenFlushing() {
        TokenDecoder decoder = tokenizer.newDecoder();
        assertEquals("a", decoder.next(vocabulary.id("a")));
        assertEquals("", decoder.next(b(0xE2)));
        assertEquals("", decoder.next(b(0x82)));
        assertEquals("\uFFFD", decoder.flush());
        assertEquals("", decoder.flush());
    }

    @Test
    void shouldNotHoldBytesWhenTheyCannotStartACharacter() {
        TokenDecoder decoder = tokenizer.newDecoder();
        assertEquals("\uFFFD", decoder.next(b(0x80)));
        assertEquals("\uFFFD", decoder.next(b(0xC0)));
        assertEquals("", decoder.next(b(0xE0)));
        assertEquals("\uFFFD\uFFFD", decoder.next(b(0x80))); // E0 80 would be an overlong form: never valid
    }

    @Test
    void shouldStripLeadingSpaceOfFirstTokenWhenStreamingLikeDecode() {
        TokenDecoder decoder = tokenizer.newDecoder();
        assertEquals("a", decoder.next(vocabulary.id("▁a")));
        assertEquals(" a", decoder.next(vocabulary.id("▁a")));

        TokenDecoder afterBos = tokenizer.newDecoder();
        assertEquals("", afterBos.next(TinyVocabulary.BOS));
        assertEquals(" a", afterBos.next(vocabulary.id("▁a")));
    }

    @Test
    void shouldEqualDecodeWhenStreamingRandomTokens() {
        Random random = new Random(42);
        int[] highBytes = {0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xE2, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF};
        for (int round = 0; round < 20_000; round++) {
            int[] ids = new int[1 + random.nextInt(12)];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = switch (random.nextInt(4)) {
                    case 0 -> random.nextInt(tokenizer.vocabularySize());
                    case 1 -> b(0x41);
                    default -> b(highBytes[random.nextInt(highBytes.length)]);
                };
            }
            TokenDecoder decoder = tokenizer.newDecoder();
            StringBuilder streamed = new StringBuilder();
            for (int id : ids) {
                streamed.append(decoder.next(id));
            }
            streamed.append(decoder.flush());
            assertEquals(tokenizer.decode(ids), streamed.toString(), () -> "ids " + java.util.Arrays.toString(ids));
        }
    }
}
