package io.kvstash.engine.tokenizer;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.HexFormat;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

class ReplacingUtf8DecoderTest {

    private static String decode(String hex) {
        byte[] bytes = HexFormat.of().parseHex(hex);
        return ReplacingUtf8Decoder.decode(bytes, 0, bytes.length);
    }

    @Test
    void shouldMatchJavaWhenBytesAreWellFormed() {
        String text = "plain ASCII, café, 日本語, 🙂🚀, \u0000, \uFFFD, \uD7FF\uE000\uDBFF\uDFFF";
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        assertEquals(text, ReplacingUtf8Decoder.decode(bytes, 0, bytes.length));
    }

    @Test
    void shouldReplaceEachMaximalSubpartWhenBytesAreIllFormed() {
        assertEquals("\uFFFD", decode("e282"));                 // truncated €
        assertEquals("\uFFFDA", decode("e28241"));
        assertEquals("\uFFFD\uFFFD\uFFFD", decode("eda080"));   // an encoded surrogate
        assertEquals("\uFFFD\uFFFD", decode("c0af"));           // overlong '/'
        assertEquals("\uFFFD\uFFFD\uFFFD\uFFFD", decode("f4908080")); // above U+10FFFF
        assertEquals("\uFFFD\u20AC", decode("f09fe282ac"));     // truncated 4-byte lead, then €
        assertEquals("\uFFFD\uFFFD", decode("80bf"));
    }

    @Test
    void shouldHoldOnlyCompletablePrefixWhenTextEndsInsideCharacter() {
        byte[] bytes = HexFormat.of().parseHex("41f09f99");
        assertEquals(3, ReplacingUtf8Decoder.incompleteTailLength(bytes, 4));
        assertEquals(2, ReplacingUtf8Decoder.incompleteTailLength(bytes, 3));
        assertEquals(0, ReplacingUtf8Decoder.incompleteTailLength(bytes, 1));
        byte[] surrogate = HexFormat.of().parseHex("eda0");
        assertEquals(0, ReplacingUtf8Decoder.incompleteTailLength(surrogate, 2));
        assertEquals(1, ReplacingUtf8Decoder.incompleteTailLength(surrogate, 1));
    }

    @Test
    void shouldDecodeChunksLikeWholeWhenCutOutsideCharacters() {
        Random random = new Random(11);
        for (int round = 0; round < 50_000; round++) {
            byte[] bytes = new byte[1 + random.nextInt(10)];
            for (int i = 0; i < bytes.length; i++) {
                bytes[i] = (byte) (random.nextBoolean() ? 0x80 + random.nextInt(0x80) : random.nextInt(256));
            }
            int cut = random.nextInt(bytes.length + 1);
            cut -= ReplacingUtf8Decoder.incompleteTailLength(bytes, cut);
            String whole = ReplacingUtf8Decoder.decode(bytes, 0, bytes.length);
            String chunked = ReplacingUtf8Decoder.decode(bytes, 0, cut) + ReplacingUtf8Decoder.decode(bytes, cut, bytes.length);
            assertEquals(whole, chunked, HexFormat.of().formatHex(bytes) + " cut at " + cut);
        }
    }
}
