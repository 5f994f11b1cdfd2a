package io.kvstash.engine.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvstash.engine.gguf.GgufFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The real Llama 2 vocabularies (32000 tokens in stories15M, 512 in stories260K) against ids that
 * llama.cpp produced, from {@code $KVSTASH_TEST_MODELS} and {@code $KVSTASH_TEST_MODELS/../reference}.
 */
class LlamaCppReferenceTokenizationTest {
    private static final String SPECIAL_TAGS_CASE = "<s> literal tags </s>";
    private static final List<String> ROUND_TRIP_TEXTS = List.of(
            "Once upon a time",
            " leading space",
            "trailing space ",
            "two  spaces and   three",
            "    indented\n\tand tabbed\n\n\nthree newlines\r\nwindows",
            "日本語のテキスト and 中文 mixed with English",
            "emoji 🙂🚀, a family 👩‍👩‍👧 and a flag 🇫🇷",
            "naïve café résumé Ünïcödé ĀāĂă ß",
            "\n starts with a newline",
            "",
            " ",
            "Lily's dog didn't bark: \"Woof?!\" (no) [yes] {maybe} <s> </s> <unk>");

    /**
     * The models folder. Every test asks for it, rather than a {@code @BeforeAll}, so that each
     * one is reported as skipped, with the reason, when the variable is not set.
     */
    private static Path models() {
        String dir = System.getenv("KVSTASH_TEST_MODELS");
        assumeTrue(dir != null && !dir.isBlank(), "KVSTASH_TEST_MODELS not set: skipping llama.cpp tokenizer reference tests");
        return Path.of(dir);
    }

    private static Path reference() {
        return models().resolve("../reference").normalize();
    }

    private static Tokenizer tokenizer(String modelFile) {
        try (GgufFile file = GgufFile.open(models().resolve(modelFile))) {
            return Tokenizer.fromGguf(file);
        }
    }

    private static Stream<Tokenizer> bothVocabularies() {
        return Stream.of(tokenizer("stories15M-f16.gguf"), tokenizer("stories260K-f32.gguf"));
    }

    @ParameterizedTest
    @ValueSource(strings = {"tokenizer-llama2-spm-32000.json", "tokenizer-llama2-spm-512.json"})
    void shouldReproduceLlamaCppIdsWhenEncodingReferenceCases(String referenceFile) throws IOException {
        JsonNode root = new ObjectMapper().readTree(Files.readString(reference().resolve(referenceFile)));
        Tokenizer tokenizer = tokenizer(root.get("model").asText());
        List<Executable> cases = new ArrayList<>();
        for (JsonNode c : root.get("cases")) {
            String text = c.get("text").asText();
            int[] expected = new int[c.get("ids").size()];
            for (int i = 0; i < expected.length; i++) {
                expected[i] = c.get("ids").get(i).asInt();
            }
            // The reference made this one case with special-token parsing on (see reference/README.md).
            boolean parseSpecial = text.equals(SPECIAL_TAGS_CASE);
            String label = "\"" + text.replace("\n", "\\n").replace("\t", "\\t") + "\"";
            cases.add(() -> assertArrayEquals(expected, tokenizer.encode(text, true, parseSpecial), label));
        }
        assertFalse(cases.isEmpty(), "no cases in " + referenceFile);
        assertAll(cases);
    }

    @Test
    void shouldKeepControlTagsAsTextWhenParseSpecialIsOff() {
        bothVocabularies().forEach(tokenizer -> {
            int[] ids = tokenizer.encode(SPECIAL_TAGS_CASE, true, false);
            assertEquals(tokenizer.bos(), ids[0]);
            assertNotEquals(tokenizer.bos(), ids[1], "'<s>' in user text must not become BOS");
            for (int i = 1; i < ids.length; i++) {
                assertNotEquals(tokenizer.bos(), ids[i]);
                assertNotEquals(tokenizer.eos(), ids[i]);
            }
            assertEquals(SPECIAL_TAGS_CASE, tokenizer.decode(java.util.Arrays.copyOfRange(ids, 1, ids.length)));
        });
    }

    @Test
    void shouldRoundTripWhenDecodingEncodedText() {
        bothVocabularies().forEach(tokenizer -> {
            for (String text : ROUND_TRIP_TEXTS) {
                assertEquals(text, tokenizer.decode(tokenizer.encode(text, false, false)), "without BOS");
                // After BOS llama.cpp keeps the space of the prefix (see Tokenizer#decode).
                String expectedAfterBos = text.isEmpty() ? "" : " " + text;
                assertEquals(expectedAfterBos, tokenizer.decode(tokenizer.encode(text, true, false)), "with BOS");
            }
        });
    }

    @Test
    void shouldEqualDecodeWhenStreamingTokenByToken() {
        bothVocabularies().forEach(tokenizer -> {
            for (String text : ROUND_TRIP_TEXTS) {
                for (boolean addBos : new boolean[] {false, true}) {
                    int[] ids = tokenizer.encode(text, addBos, false);
                    TokenDecoder decoder = tokenizer.newDecoder();
                    StringBuilder streamed = new StringBuilder();
                    for (int id : ids) {
                        streamed.append(decoder.next(id));
                    }
                    streamed.append(decoder.flush());
                    assertEquals(tokenizer.decode(ids), streamed.toString(), text);
                }
            }
        });
    }

    @Test
    void shouldTokenizeLargeTextWhenItIs100Kilobytes() {
        String text = syntheticText(100 * 1024);
        bothVocabularies().forEach(tokenizer -> {
            tokenizer.encode(text, true, false); // warm-up, so the timing below is not the JIT's
            long started = System.nanoTime();
            int[] ids = tokenizer.encode(text, true, false);
            long micros = (System.nanoTime() - started) / 1000;
            System.out.printf("tokenized %d chars into %d tokens (vocabulary %d) in %.1f ms%n",
                    text.length(), ids.length, tokenizer.vocabularySize(), micros / 1000.0);
            assertEquals(" " + text, tokenizer.decode(ids));
        });
    }

    private static String syntheticText(int chars) {
        String[] words = {"Once", "upon", "a", "time", "there", "was", "a", "little", "girl", "named", "Lily", ".", ",",
                "she", "liked", "to", "play", "outside", "!", "café", "日本語", "🙂", "12345", "3.14", "don't", "\n", "\n\n", "  "};
        Random random = new Random(3);
        StringBuilder sb = new StringBuilder(chars + 16);
        while (sb.length() < chars) {
            sb.append(words[random.nextInt(words.length)]).append(' ');
        }
        sb.setLength(chars);
        return sb.toString();
    }

    @Test
    void shouldReadLlamaSettingsWhenLoadingStories15M() {
        Tokenizer tokenizer = tokenizer("stories15M-f16.gguf");
        assertTrue(tokenizer instanceof SentencePieceTokenizer);
        assertEquals(32000, tokenizer.vocabularySize());
        assertEquals(1, tokenizer.bos());
        assertEquals(2, tokenizer.eos());
        assertTrue(tokenizer.addBosByDefault());
        assertTrue(tokenizer.isEndOfGeneration(2));
        assertFalse(tokenizer.isEndOfGeneration(1));
        assertEquals("▁Once", tokenizer.piece(9038));
        assertEquals("<0x0A>", tokenizer.piece(13));
        assertEquals("Once upon a time", tokenizer.decode(new int[] {9038, 2501, 263, 931}));
    }
}
