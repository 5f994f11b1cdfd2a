package io.kvstash.engine.tokenizer;

import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.gguf.GgufFormatException;
import io.kvstash.engine.gguf.GgufWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Byte-level BPE on hand-made vocabularies: merge order, byte fallback, special tokens, GGUF settings. */
class BpeTokenizerTest {
    @TempDir
    Path dir;

    /** The 256 byte tokens first (id = byte value), then whatever a test adds. */
    private static final class Vocabulary {
        final List<String> tokens = new ArrayList<>();
        final List<Integer> types = new ArrayList<>();
        final List<String> merges = new ArrayList<>();

        Vocabulary() {
            for (int b = 0; b < 256; b++) {
                tokens.add(String.valueOf(ByteLevelAlphabet.encode(b)));
                types.add(1);
            }
        }

        /** A normal token, given as plain text (written in the byte-level alphabet, so ' ' becomes 'Ġ'). */
        Vocabulary token(String text) {
            tokens.add(alphabet(text));
            types.add(1);
            return this;
        }

        /** A token stored as is, of GGUF type {@code type}. */
        Vocabulary special(String text, int type) {
            tokens.add(text);
            types.add(type);
            return this;
        }

        Vocabulary merge(String left, String right) {
            merges.add(alphabet(left) + " " + alphabet(right));
            return this;
        }

        int id(String text) {
            int id = tokens.indexOf(alphabet(text));
            if (id < 0) {
                id = tokens.indexOf(text);
            }
            if (id < 0) {
                throw new IllegalArgumentException("no token '" + text + "'");
            }
            return id;
        }

        BpeTokenizer tokenizer(String pre) {
            return new BpeTokenizer(tokens.toArray(String[]::new), types.stream().mapToInt(Integer::intValue).toArray(),
                    merges.toArray(String[]::new), PreTokenizer.forName(pre), -1, -1, -1, -1, -1, false, false);
        }

        static String alphabet(String text) {
            StringBuilder sb = new StringBuilder();
            for (byte b : text.getBytes(StandardCharsets.UTF_8)) {
                sb.append(ByteLevelAlphabet.encode(b & 0xFF));
            }
            return sb.toString();
        }
    }

    private static int b(char c) {
        return c; // the byte tokens come first, in byte order
    }

    @Test
    void shouldMapEveryByteToOneCharacterAndBackWhenUsingGpt2Alphabet() {
        assertEquals('Ġ', ByteLevelAlphabet.encode(' '));
        assertEquals('Ċ', ByteLevelAlphabet.encode('\n'));
        assertEquals('ĉ', ByteLevelAlphabet.encode('\t'));
        assertEquals('A', ByteLevelAlphabet.encode('A'));
        assertEquals('Â', ByteLevelAlphabet.encode(0xC2));
        assertEquals('ł', ByteLevelAlphabet.encode(0xA0));
        assertEquals('Ń', ByteLevelAlphabet.encode(0xAD), "the last byte to be moved: U+0143");
        assertEquals(0x144, ByteLevelAlphabet.CHAR_LIMIT);
        Set<Character> seen = new HashSet<>();
        for (int b = 0; b < 256; b++) {
            char c = ByteLevelAlphabet.encode(b);
            assertTrue(seen.add(c), "two bytes map to " + c);
            assertEquals(b, ByteLevelAlphabet.decode(c));
        }
        assertEquals(-1, ByteLevelAlphabet.decode(' '), "a space is not in the alphabet");
        assertEquals(-1, ByteLevelAlphabet.decode(0x144));
    }

    @Test
    void shouldMergeLowestRankFirstWhenPairsCompete() {
        Vocabulary v = new Vocabulary().token("ab").token("bc");
        assertArrayEquals(new int[] {v.id("ab"), b('c')}, v.merge("a", "b").merge("b", "c").tokenizer("gpt-2").encode("abc", false, false));
        Vocabulary w = new Vocabulary().token("ab").token("bc");
        assertArrayEquals(new int[] {b('a'), w.id("bc")}, w.merge("b", "c").merge("a", "b").tokenizer("gpt-2").encode("abc", false, false));
    }

    @Test
    void shouldMergeLeftmostFirstWhenRanksTie() {
        Vocabulary v = new Vocabulary().token("aa").merge("a", "a");
        int aa = v.id("aa");
        BpeTokenizer t = v.tokenizer("gpt-2");
        assertArrayEquals(new int[] {aa, b('a')}, t.encode("aaa", false, false));
        assertArrayEquals(new int[] {aa, aa, b('a')}, t.encode("aaaaa", false, false));
    }

    @Test
    void shouldKeepMergingThroughTextsThatAreNotTokensWhenMergesSaySo() {
        // "xy" is no token, but "xy" + "z" merges into "xyz", which is.
        Vocabulary v = new Vocabulary().token("xyz").merge("x", "y").merge("xy", "z");
        BpeTokenizer t = v.tokenizer("gpt-2");
        assertArrayEquals(new int[] {v.id("xyz")}, t.encode("xyz", false, false));
        assertArrayEquals(new int[] {b('x'), b('y')}, t.encode("xy", false, false), "a symbol that is no token falls back to its bytes");
    }

    @Test
    void shouldTakeWholeWordsThatAreTokensOnlyWhenPreTokenizerIgnoresMerges() {
        Vocabulary v = new Vocabulary().token("abc");
        assertArrayEquals(new int[] {v.id("abc")}, v.tokenizer("llama-bpe").encode("abc", false, false));
        assertArrayEquals(new int[] {b('a'), b('b'), b('c')}, v.tokenizer("qwen2").encode("abc", false, false));
    }

    @Test
    void shouldNeverMergeAcrossWordsWhenAMergeWouldJoinThem() {
        Vocabulary v = new Vocabulary().token(" b").token("a b").merge(" ", "b").merge("a", " b");
        assertArrayEquals(new int[] {b('a'), v.id(" b")}, v.tokenizer("gpt-2").encode("a b", false, false));
    }

    @Test
    void shouldWriteUtf8BytesWhenCharactersHaveNoToken() {
        BpeTokenizer t = new Vocabulary().tokenizer("llama-bpe");
        int[] ids = t.encode("é🙂", false, false);
        assertArrayEquals(new int[] {0xC3, 0xA9, 0xF0, 0x9F, 0x99, 0x82}, ids);
        assertEquals("é🙂", t.decode(ids));
        TokenDecoder decoder = t.newDecoder();
        assertEquals("", decoder.next(0xC3));
        assertEquals("é", decoder.next(0xA9));
        assertEquals("", decoder.next(0xF0));
        assertEquals("", decoder.next(0x9F));
        assertEquals("", decoder.next(0x99));
        assertEquals("🙂", decoder.next(0x82));
        assertEquals("", decoder.next(0xE2));
        assertEquals("\uFFFD", decoder.flush(), "an unfinished character is replaced at the end");
    }

    @Test
    void shouldHoldIncompleteCharactersWhenMultiBytePiecesSplitThem() {
        // Like Llama 3's "ĠðŁ" (space + first two bytes of an emoji): a piece may end inside a character.
        Vocabulary v = new Vocabulary().special(Vocabulary.alphabet(" ") + ByteLevelAlphabet.encode(0xF0) + ByteLevelAlphabet.encode(0x9F), 1);
        int piece = v.tokens.size() - 1;
        BpeTokenizer t = v.tokenizer("gpt-2");
        assertEquals("ĠðŁ", t.piece(piece));
        TokenDecoder decoder = t.newDecoder();
        assertEquals(" ", decoder.next(piece), "the whole characters go out, the started one waits");
        assertEquals("", decoder.next(0x99));
        assertEquals("🙂", decoder.next(0x82));
        assertEquals(" 🙂", t.decode(new int[] {piece, 0x99, 0x82}));
        assertArrayEquals(new int[] {' ', 0xF0, 0x9F, 0x99, 0x82}, t.encode(" 🙂", false, false), "no merges: bytes");
    }

    @Test
    void shouldParseControlTokensOnlyWhenAskedAndUserDefinedOnesAlways() {
        Vocabulary v = new Vocabulary().special("<|ctl|>", 3).special("<tag>", 4);
        BpeTokenizer t = v.tokenizer("llama-bpe");
        int ctl = v.id("<|ctl|>");
        int tag = v.id("<tag>");
        assertArrayEquals(new int[] {b('a'), ctl, tag, b('b')}, t.encode("a<|ctl|><tag>b", false, true));
        int[] plain = t.encode("a<|ctl|><tag>b", false, false);
        assertFalse(contains(plain, ctl));
        assertTrue(contains(plain, tag));
        assertEquals("a<|ctl|><tag>b", t.decode(plain));
        assertEquals("a<tag>b", t.decode(new int[] {b('a'), ctl, tag, b('b')}), "control tokens decode to nothing, user-defined ones to their text");
    }

    @Test
    void shouldEndGenerationOnEndOfTurnTokensWhenRecognisedByText() {
        // Normal-typed in the file: llama.cpp makes them control tokens, so user text cannot forge them.
        Vocabulary v = new Vocabulary().special("<|im_end|>", 1).special("<|endoftext|>", 1).special("<|eom_id|>", 4)
                .special("<|im_start|>", 3).special("<|file_sep|>", 3);
        BpeTokenizer t = v.tokenizer("qwen2");
        int imEnd = v.id("<|im_end|>");
        for (String text : List.of("<|im_end|>", "<|endoftext|>", "<|eom_id|>", "<|file_sep|>")) {
            assertTrue(t.isEndOfGeneration(v.id(text)), text);
            assertFalse(contains(t.encode("x" + text, false, false), v.id(text)), text + " parsed from user text");
            assertArrayEquals(new int[] {v.id(text)}, t.encode(text, false, true));
            assertEquals("", t.decode(new int[] {v.id(text)}));
        }
        assertFalse(t.isEndOfGeneration(v.id("<|im_start|>")));
        assertFalse(t.isEndOfGeneration(b('a')));
        assertEquals(imEnd, t.endOfTurn());
        assertEquals(v.id("<|eom_id|>"), t.endOfMessage());
    }

    // ---- from GGUF ---------------------------------------------------------------------------

    private Path file(Consumer<GgufWriter> customize) {
        Vocabulary v = new Vocabulary().token("ab").merge("a", "b").special("<|begin_of_text|>", 3).special("<|end_of_text|>", 3);
        GgufWriter w = new GgufWriter()
                .addString("general.architecture", "llama")
                .addString("tokenizer.ggml.model", "gpt2")
                .addString("tokenizer.ggml.pre", "llama-bpe")
                .addStringArray("tokenizer.ggml.tokens", v.tokens.toArray(String[]::new))
                .addInt32Array("tokenizer.ggml.token_type", v.types.stream().mapToInt(Integer::intValue).toArray())
                .addStringArray("tokenizer.ggml.merges", v.merges.toArray(String[]::new))
                .addUint32("tokenizer.ggml.bos_token_id", 257)
                .addUint32("tokenizer.ggml.eos_token_id", 258);
        customize.accept(w);
        return w.write(dir.resolve("vocab.gguf"));
    }

    private static Tokenizer open(Path path) {
        try (GgufFile f = GgufFile.open(path)) {
            return Tokenizer.fromGguf(f);
        }
    }

    @Test
    void shouldReadSettingsWhenLoadingAGpt2Tokenizer() {
        BpeTokenizer t = assertInstanceOf(BpeTokenizer.class, open(file(w -> { })));
        assertEquals("llama-bpe", t.preTokenizer());
        assertEquals(257, t.bos());
        assertEquals(258, t.eos());
        assertTrue(t.addBosByDefault(), "llama-bpe adds BOS when the file does not say");
        assertFalse(t.addEosByDefault());
        assertTrue(t.isEndOfGeneration(258));
        assertArrayEquals(new int[] {257, 256, 'c'}, t.encode("abc", true, false));
        assertArrayEquals(new int[] {256, 'c'}, t.encode("abc", false, false));
        assertEquals("abc", t.decode(new int[] {257, 256, 'c', 258}));
    }

    @Test
    void shouldFollowTheFileWhenItSaysWhetherToAddBosAndEos() {
        Tokenizer t = open(file(w -> w.addBool("tokenizer.ggml.add_bos_token", false).addBool("tokenizer.ggml.add_eos_token", true)));
        assertFalse(t.addBosByDefault());
        assertTrue(t.addEosByDefault());
    }

    @Test
    void shouldUseLlamaCppDefaultsWhenKeysAreAbsent() {
        BpeTokenizer t = assertInstanceOf(BpeTokenizer.class, open(file(w -> w.removeMetadata("tokenizer.ggml.pre")
                .removeMetadata("tokenizer.ggml.bos_token_id").removeMetadata("tokenizer.ggml.eos_token_id"))));
        assertEquals("default", t.preTokenizer());
        assertFalse(t.addBosByDefault());
        assertEquals(11, t.bos(), "llama.cpp's BPE default");
        assertEquals(11, t.eos());
    }

    @Test
    void shouldNameSupportedPreTokenizersWhenTheFileNamesAnUnknownOne() {
        Path path = file(w -> w.removeMetadata("tokenizer.ggml.pre").addString("tokenizer.ggml.pre", "my-new-model"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> open(path));
        assertTrue(e.getMessage().contains("'my-new-model'"), e.getMessage());
        assertTrue(e.getMessage().contains("vocab.gguf"), e.getMessage());
        for (String name : List.of("default", "llama-bpe", "qwen2", "smollm", "gpt-2")) {
            assertTrue(e.getMessage().contains(name), e.getMessage());
        }
    }

    @Test
    void shouldRejectFileWhenMergesAreMissing() {
        Path path = file(w -> w.removeMetadata("tokenizer.ggml.merges"));
        GgufFormatException e = assertThrows(GgufFormatException.class, () -> open(path));
        assertTrue(e.getMessage().contains("tokenizer.ggml.merges"), e.getMessage());
    }

    @Test
    void shouldRejectFileWhenTokenizerModelIsUnknown() {
        Path path = file(w -> w.removeMetadata("tokenizer.ggml.model").addString("tokenizer.ggml.model", "t5"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> open(path));
        assertTrue(e.getMessage().contains("'t5'") && e.getMessage().contains("'gpt2'"), e.getMessage());
    }

    private static boolean contains(int[] ids, int id) {
        for (int x : ids) {
            if (x == id) {
                return true;
            }
        }
        return false;
    }
}
