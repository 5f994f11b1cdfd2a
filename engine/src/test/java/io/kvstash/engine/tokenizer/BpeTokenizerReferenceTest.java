package io.kvstash.engine.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.testing.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The real Llama 3 and Qwen byte-level BPE vocabularies ({@code ggml-vocab-*.gguf}) against the ids
 * llama.cpp produced ({@code reference/tokenizer-{llama3,qwen2}.json}, made without BOS), plus
 * round trips and streaming on texts chosen to stress the pre-tokenizers.
 */
class BpeTokenizerReferenceTest {
    static final String LLAMA3 = "ggml-vocab-llama3.gguf";
    static final String QWEN2 = "ggml-vocab-qwen2.gguf";

    /** Hand-made texts for properties that need no reference ids: round trips, streaming, speed. */
    static final List<String> EXTRA_TEXTS = List.of(
            "0 12 123 1234 12345 123456 1234567 ١٢٣٤ ²³ ½ Ⅻ",
            "3.14159, -42, +7e10, 0x1F, 1_000_000, 2^32",
            "🙂🚀🦙 👩‍👩‍👧 🇫🇷🇯🇵 ❤️ 👍🏿 🫠",
            "中文文本没有空格也能分词吗我想知道结果会是什么样子的呢",
            "日本語とEnglishとРусскийと한국어とعربيمختلطة",
            "  two leading, three trailing   ",
            "tabs\t\tand\u00A0nbsp\u2003em-space\u3000ideographic",
            "\n\n\nthree newlines then text\n",
            "\r\n\r\n windows \r\n lines \r",
            " \n \n mixed space and newline runs \t\n",
            "don't won't I'd you'll they've we're she's 'S 'T 'RE 'VE 'M 'LL 'D 'sup ''quoted''",
            "'ſ ' K - long s and Kelvin after an apostrophe",
            "x  y   z    ", "    ", "\t", "a", "!", "'", "''''",
            "email: someone@example.org, path: /usr/local/bin, regex: ^[a-z]+$",
            "<|eot_id|> <|im_end|> <|endoftext|> <think> </think> <|begin_of_text|>",
            "<|im_start|>user\nHi<|im_end|>\n<|start_header_id|>assistant<|end_header_id|>",
            "Ünïcödé ĀāĂă ß ǅ ﬁ Ω Å e\u0301 \u0301 \u200B zero-width \uFEFF BOM",
            "\u0085next line\u2028line sep\u2029para sep",
            "control \u0001\u0002\u001F chars and DEL \u007F",
            "lone high \uD83D surrogate and lone low \uDE42 one");

    static Tokenizer tokenizer(String file) {
        try (GgufFile f = GgufFile.open(TestModels.model(file))) {
            return Tokenizer.fromGguf(f);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"tokenizer-llama3.json", "tokenizer-qwen2.json"})
    void shouldReproduceLlamaCppIdsWhenEncodingReferenceCasesInBothParseSpecialModes(String referenceFile) throws IOException {
        JsonNode root = new ObjectMapper().readTree(Files.readString(TestModels.reference(referenceFile)));
        Tokenizer tokenizer = tokenizer(root.get("model").asText());
        assertEquals(root.get("vocab_size").asInt(), tokenizer.vocabularySize());
        Map<String, List<Boolean>> modesByText = new HashMap<>();
        for (JsonNode c : root.get("cases")) {
            modesByText.computeIfAbsent(c.get("text").asText(), t -> new ArrayList<>()).add(c.get("parse_special").asBoolean());
        }
        List<Executable> checks = new ArrayList<>();
        for (JsonNode c : root.get("cases")) {
            String text = c.get("text").asText();
            boolean parseSpecial = c.get("parse_special").asBoolean();
            int[] expected = ints(c.get("ids"));
            String label = "\"" + text.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + "\" parse_special=" + parseSpecial;
            checks.add(() -> assertArrayEquals(expected, tokenizer.encode(text, false, parseSpecial), label));
            checks.add(() -> {
                List<String> pieces = new ArrayList<>();
                for (int id : expected) {
                    pieces.add(tokenizer.piece(id));
                }
                List<String> expectedPieces = new ArrayList<>();
                c.get("pieces").forEach(p -> expectedPieces.add(p.asText()));
                assertEquals(expectedPieces, pieces, label + " pieces");
            });
            if (modesByText.get(text).size() == 1) {
                // Only made in one mode: the text holds no control-token text, so the other mode must agree.
                checks.add(() -> assertArrayEquals(expected, tokenizer.encode(text, false, !parseSpecial), label + " (other mode)"));
            }
        }
        assertTrue(checks.size() >= 60, "expected about 30 cases in " + referenceFile);
        assertAll(checks);
    }

    @ParameterizedTest
    @ValueSource(strings = {"tokenizer-llama3.json", "tokenizer-qwen2.json"})
    void shouldAddBosOnlyWhenAskedAndFollowTheFileDefault(String referenceFile) throws IOException {
        JsonNode root = new ObjectMapper().readTree(Files.readString(TestModels.reference(referenceFile)));
        Tokenizer tokenizer = tokenizer(root.get("model").asText());
        assertEquals(root.get("bos_token_id").asInt(), tokenizer.bos());
        assertEquals(root.get("eos_token_id").asInt(), tokenizer.eos());
        assertEquals(root.get("add_bos_token").asBoolean(), tokenizer.addBosByDefault());
        assertFalse(tokenizer.addEosByDefault());
        JsonNode example = root.get("default_bos_example");
        String text = example.get("text").asText();
        assertArrayEquals(ints(example.get("ids")), tokenizer.encode(text, tokenizer.addBosByDefault(), false));
        int[] withBos = tokenizer.encode(text, true, false);
        int[] without = tokenizer.encode(text, false, false);
        assertEquals(tokenizer.bos(), withBos[0]);
        assertArrayEquals(without, Arrays.copyOfRange(withBos, 1, withBos.length));
        assertEquals(text, tokenizer.decode(withBos), "BOS decodes to nothing");
        assertArrayEquals(new int[] {tokenizer.bos()}, tokenizer.encode("", true, false));
        assertArrayEquals(new int[0], tokenizer.encode("", false, true));
    }

    /** The prompts of the synthetic models' logits references, as llama.cpp tokenized them (BOS as each file says). */
    @ParameterizedTest
    @ValueSource(strings = {"logits-synth-llama3.json", "logits-synth-qwen2.json"})
    void shouldReproduceLlamaCppPromptIdsWhenModelHasAByteLevelVocabulary(String referenceFile) throws IOException {
        JsonNode root = new ObjectMapper().readTree(Files.readString(TestModels.reference(referenceFile)));
        Tokenizer tokenizer = tokenizer(root.get("model").asText());
        List<Executable> checks = new ArrayList<>();
        for (JsonNode r : root.get("records")) {
            String prompt = r.get("prompt").asText();
            checks.add(() -> assertArrayEquals(ints(r.get("prompt_ids")), tokenizer.encode(prompt, tokenizer.addBosByDefault(), false), prompt));
        }
        assertFalse(checks.isEmpty());
        assertAll(checks);
    }

    /**
     * A second opinion on edge cases the llama.cpp reference does not cover (digits of other
     * scripts, Unicode whitespace, apostrophes before odd letters, controls, emoji sequences):
     * Hugging Face's tokenizer agrees with llama.cpp on every reference case except Qwen's NFC
     * normalization, which the fixture accounts for. See the fixture's {@code source} and {@code note}.
     */
    @Test
    void shouldAgreeWithHuggingFaceTokenizersWhenTextsStressThePreTokenizers() throws IOException {
        JsonNode root;
        try (var in = getClass().getResourceAsStream("/tokenizer/hf-crosscheck-bpe.json")) {
            root = new ObjectMapper().readTree(in);
        }
        Tokenizer llama = tokenizer(LLAMA3);
        Tokenizer qwen = tokenizer(QWEN2);
        List<Executable> checks = new ArrayList<>();
        for (JsonNode c : root.get("cases")) {
            String text = c.get("text").asText();
            String label = "\"" + text.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + "\"";
            checks.add(() -> assertArrayEquals(ints(c.get("llama3")), llama.encode(text, false, true), "Llama 3 " + label));
            String nfc = Normalizer.normalize(text, Normalizer.Form.NFC);
            checks.add(() -> assertArrayEquals(ints(c.get("qwen2_of_nfc_text")), qwen.encode(nfc, false, true), "Qwen " + label));
        }
        assertTrue(checks.size() > 800);
        assertAll(checks);
    }

    @Test
    void shouldReadLlama3SpecialTokensWhenLoadingItsVocabulary() {
        BpeTokenizer t = assertInstanceOf(BpeTokenizer.class, tokenizer(LLAMA3));
        assertEquals("llama-bpe", t.preTokenizer());
        assertEquals(128000, t.bos());
        assertEquals(128001, t.eos());
        assertEquals(128009, t.endOfTurn(), "<|eot_id|>, found by its text");
        assertEquals(-1, t.endOfMessage(), "Llama 3.0 has no <|eom_id|>");
        assertEquals(-1, t.padding());
        assertTrue(t.isEndOfGeneration(128001), "<|end_of_text|>");
        assertTrue(t.isEndOfGeneration(128009), "<|eot_id|>");
        assertFalse(t.isEndOfGeneration(128000), "<|begin_of_text|>");
        assertFalse(t.isEndOfGeneration(128006), "<|start_header_id|>");
        assertFalse(t.isEndOfGeneration(9906), "Hello");
        assertFalse(t.isEndOfGeneration(-1));
        assertEquals("<|eot_id|>", t.piece(128009));
        assertEquals("", t.decode(new int[] {128000, 128006, 128009}), "control tokens decode to nothing");
    }

    @Test
    void shouldReadQwenSpecialTokensWhenLoadingItsVocabulary() {
        BpeTokenizer t = assertInstanceOf(BpeTokenizer.class, tokenizer(QWEN2));
        assertEquals("qwen2", t.preTokenizer());
        assertEquals(151643, t.bos());
        assertEquals(151645, t.eos());
        assertEquals(151645, t.endOfTurn(), "<|im_end|>, found by its text");
        assertEquals(151643, t.padding());
        for (int eog : new int[] {151643, 151645, 151662, 151663, 151664}) {
            assertTrue(t.isEndOfGeneration(eog), t.piece(eog));
        }
        for (int other : new int[] {151644, 151667, 151668, 151669, 9707}) {
            assertFalse(t.isEndOfGeneration(other), t.piece(other));
        }
        assertEquals("<think>\n", t.decode(new int[] {151667, 198}), "user-defined tokens decode to their text");
        assertEquals("", t.decode(new int[] {151644, 151669}), "control and unused tokens decode to nothing");
    }

    @Test
    void shouldKeepControlTokenTextAsPlainTextWhenParseSpecialIsOff() {
        for (String file : List.of(LLAMA3, QWEN2)) {
            Tokenizer t = tokenizer(file);
            for (String tag : List.of("<|eot_id|>", "<|im_end|>", "<|endoftext|>", "<|begin_of_text|>", "<|im_start|>")) {
                String text = "a" + tag + "b";
                int[] plain = t.encode(text, false, false);
                for (int id : plain) {
                    assertFalse(t.isEndOfGeneration(id), file + ": " + tag + " became " + t.piece(id));
                    assertTrue(t.piece(id).length() < tag.length(), file + ": " + tag + " became a special token");
                }
                assertEquals(text, t.decode(plain), file);
            }
            int eot = file.equals(LLAMA3) ? 128009 : 151645;
            String tag = t.piece(eot);
            assertArrayEquals(new int[] {eot}, t.encode(tag, false, true), file + " parses " + tag + " when asked");
        }
    }

    @Test
    void shouldRoundTripAndStreamWhenDecodingReferenceAndExtraTexts() throws IOException {
        List<String> texts = new ArrayList<>(EXTRA_TEXTS);
        for (String ref : List.of("tokenizer-llama3.json", "tokenizer-qwen2.json")) {
            new ObjectMapper().readTree(Files.readString(TestModels.reference(ref))).get("cases")
                    .forEach(c -> texts.add(c.get("text").asText()));
        }
        for (String file : List.of(LLAMA3, QWEN2)) {
            Tokenizer t = tokenizer(file);
            List<Executable> checks = new ArrayList<>();
            for (String text : texts) {
                String expected = UnpairedSurrogates.replace(text);
                checks.add(() -> {
                    int[] ids = t.encode(text, false, false);
                    assertEquals(expected, t.decode(ids), file + " round trip");
                    int[] withBos = t.encode(text, true, false);
                    assertEquals(expected, t.decode(withBos), file + " round trip after BOS");
                    TokenDecoder decoder = t.newDecoder();
                    StringBuilder streamed = new StringBuilder();
                    for (int id : withBos) {
                        streamed.append(decoder.next(id));
                    }
                    streamed.append(decoder.flush());
                    assertEquals(expected, streamed.toString(), file + " streamed");
                });
            }
            assertAll(checks);
        }
    }

    @Test
    void shouldSplitDigitsAsEachPreTokenizerSaysWhenTextIsNumbers() {
        Tokenizer llama = tokenizer(LLAMA3);
        Tokenizer qwen = tokenizer(QWEN2);
        for (String digits : List.of("1", "12", "123", "1234", "12345678901")) {
            int[] q = qwen.encode(digits, false, false);
            assertEquals(digits.length(), q.length, "Qwen: one token per digit in " + digits);
            int[] l = llama.encode(digits, false, false);
            assertEquals((digits.length() + 2) / 3, l.length, "Llama 3: groups of three in " + digits);
            for (int i = 0; i < l.length; i++) {
                int from = 3 * i;
                assertEquals(digits.substring(from, Math.min(digits.length(), from + 3)), llama.piece(l[i]));
            }
        }
    }

    @Test
    void shouldTokenizeLargeTextWellUnderASecondWhenItIs100Kilobytes() {
        for (String file : List.of(LLAMA3, QWEN2)) {
            Tokenizer t = tokenizer(file);
            for (String text : List.of(syntheticText(100 * 1024, 3), "中文没有空格".repeat(100 * 1024 / 18), "a".repeat(100 * 1024))) {
                t.encode(text, false, false); // warm-up, so the timing below is not the JIT's
                long started = System.nanoTime();
                int[] ids = t.encode(text, false, false);
                long micros = (System.nanoTime() - started) / 1000;
                System.out.printf("%s: %d chars (%d UTF-8 bytes) into %d tokens in %.1f ms%n", file, text.length(),
                        text.getBytes(StandardCharsets.UTF_8).length, ids.length, micros / 1000.0);
                assertEquals(text, t.decode(ids));
                // Generous on a shared 2-core machine; catches a quadratic merge (minutes on the long words here).
                assertTrue(micros < 5_000_000, file + " took " + micros / 1000 + " ms");
            }
        }
    }

    /** Mixed natural-ish text: words, punctuation, numbers, CJK, emoji, whitespace runs. */
    static String syntheticText(int chars, long seed) {
        String[] words = {"Once", "upon", "a", "time", "there", "was", "a", "little", "girl", "named", "Lily", ".", ",",
                "she", "liked", "to", "play", "outside", "!", "café", "日本語", "🙂", "12345", "3.14", "don't", "\n", "\n\n",
                "  ", "Привет", "(x)", "def", "f(n):", "\t", "THE", "I'LL", "über", "naïve", "—", "https://example.com"};
        Random random = new Random(seed);
        StringBuilder sb = new StringBuilder(chars + 32);
        while (sb.length() < chars) {
            sb.append(words[random.nextInt(words.length)]).append(' ');
        }
        sb.setLength(chars);
        if (Character.isHighSurrogate(sb.charAt(chars - 1))) {
            sb.setCharAt(chars - 1, ' ');
        }
        return sb.toString();
    }

    private static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asInt();
        }
        return out;
    }
}
