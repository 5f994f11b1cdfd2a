package io.kvstash.engine.tokenizer;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Word splits worked out by hand from llama.cpp's expressions and its hand-written matchers. */
class PreTokenizerTest {
    private static final PreTokenizer LLAMA3 = PreTokenizer.forName("llama-bpe");
    private static final PreTokenizer QWEN2 = PreTokenizer.forName("qwen2");
    private static final PreTokenizer GPT2 = PreTokenizer.forName("gpt-2");
    private static final PreTokenizer SMOLLM = PreTokenizer.forName("smollm");
    private static final PreTokenizer DEFAULT = PreTokenizer.forName("default");

    private static List<String> words(PreTokenizer p, String text) {
        return words(p, text, 0, text.length());
    }

    private static List<String> words(PreTokenizer p, String text, int from, int to) {
        List<String> words = new ArrayList<>();
        int start = from;
        for (int end : p.split(text, from, to)) {
            assertTrue(end > start, "empty or backwards word");
            words.add(text.substring(start, end));
            start = end;
        }
        assertEquals(to, start, "words must cover the range");
        return words;
    }

    @Test
    void shouldLeaveLastSpaceToNextWordWhenSpacesPrecedeAWord() {
        assertEquals(List.of("  ", " three"), words(LLAMA3, "   three"));
        assertEquals(List.of("a", "  "), words(LLAMA3, "a  "), "at the end all spaces stay together");
        assertEquals(List.of("x", "  ", " y"), words(GPT2, "x   y"));
    }

    @Test
    void shouldTreatUnicodeWhitespaceAsWhitespaceWhenSplitting() {
        // NBSP is \s to llama.cpp; with Java's ASCII-only \s the two would be punctuation: "\u00A0\u00A0", "y".
        assertEquals(List.of("x", "\u00A0", "\u00A0y"), words(LLAMA3, "x\u00A0\u00A0y"));
        assertEquals(List.of("x", "\u3000", "\u3000y"), words(QWEN2, "x\u3000\u3000y"));
        assertEquals(List.of("!", "\u0085"), words(LLAMA3, "!\u0085"));
        assertEquals(List.of("!", "\u2028"), words(GPT2, "!\u2028"));
        assertEquals(List.of("x", " \u00A0", " y"), words(LLAMA3, "x \u00A0 y"));
        // Any one character that is not a newline, letter or digit leads a letter run, whitespace included.
        assertEquals(List.of("a", "\u00A0b"), words(LLAMA3, "a\u00A0b"));
        assertEquals(List.of("a", "\tb"), words(LLAMA3, "a\tb"));
        assertEquals(List.of("a", "\t", "b"), words(GPT2, "a\tb"), "GPT-2 only takes a space in front");
    }

    @Test
    void shouldKeepNewlinesTogetherWhenTheyEndAWhitespaceRun() {
        assertEquals(List.of("a", "\n\n", " b"), words(LLAMA3, "a\n\n b"));
        assertEquals(List.of("a", " \n", "b"), words(LLAMA3, "a \nb"));
        assertEquals(List.of("!!!\n\n", "x"), words(LLAMA3, "!!!\n\nx"), "punctuation takes the newlines after it");
        assertEquals(List.of("line", "1", "\r\n", "end"), words(QWEN2, "line1\r\nend"));
        assertEquals(List.of("a", "\n", "b"), words(GPT2, "a\nb"), "unmatched text is a word of its own");
    }

    @Test
    void shouldMatchContractionsCaseInsensitivelyOnlyForAsciiLetters() {
        assertEquals(List.of("I", "'LL"), words(LLAMA3, "I'LL"));
        assertEquals(List.of("she", "'S"), words(QWEN2, "she'S"));
        assertEquals(List.of("I", "'", "LL"), words(GPT2, "I'LL"), "GPT-2's contractions are lower case only");
        // Unicode case folding would make "'ſ" (long s) a contraction and leave "a" alone.
        assertEquals(List.of("'ſa"), words(LLAMA3, "'ſa"));
        assertEquals(List.of("'ſt"), words(QWEN2, "'ſt"));
        assertEquals(List.of("'s", "up"), words(GPT2, "'sup"));
        assertEquals(List.of("'s", "up"), words(LLAMA3, "'sup"));
    }

    @Test
    void shouldGroupDigitsAsEachPreTokenizerSaysWhenTextHasNumbers() {
        assertEquals(List.of("123", "456", "7"), words(LLAMA3, "1234567"));
        assertEquals(List.of("1", "2", "3", "4"), words(QWEN2, "1234"));
        assertEquals(List.of("12345"), words(GPT2, "12345"));
        assertEquals(List.of(" ", "12"), words(LLAMA3, " 12"));
        assertEquals(List.of(" 12"), words(GPT2, " 12"));
        assertEquals(List.of("١٢٣", "٤"), words(LLAMA3, "١٢٣٤"), "\\p{N} is every script's digits");
    }

    @Test
    void shouldSplitDigitsFirstWhenPreTokenizerIsSmolLm() {
        // "\p{N}" cuts first, so the space before 6 stays alone (GPT-2 alone would give " 6").
        assertEquals(List.of("ab", "1", "2", "3", " ", "6"), words(SMOLLM, "ab123 6"));
    }

    @Test
    void shouldApplyEveryExpressionOfTheChainWhenPreTokenizerIsDefault() {
        assertEquals(List.of("Hello", ",", " world", "!!", " ", "123", "45"), words(DEFAULT, "Hello, world!! 12345"));
        assertSame(DEFAULT, PreTokenizer.forName(null), "an absent key means llama.cpp's default");
    }

    @Test
    void shouldSeeRangeEndAsTextEndWhenSplittingAFragment() {
        // Within [0, 3) "a  " ends the text, so both spaces stay together although "b" follows.
        assertEquals(List.of("a", "  "), words(LLAMA3, "a  b", 0, 3));
        assertEquals(List.of(" b"), words(LLAMA3, "a  b", 2, 4));
        assertEquals(List.of(), words(LLAMA3, "abc", 1, 1));
    }

    @Test
    void shouldNotOverflowWhenWordsAreVeryLong() {
        int n = 200_000;
        assertEquals(1, LLAMA3.split("x".repeat(n), 0, n).length);
        assertEquals(1, QWEN2.split(" ".repeat(n), 0, n).length);
        assertEquals(1, LLAMA3.split("!".repeat(n), 0, n).length);
        assertEquals(n / 3 + 1, LLAMA3.split("7".repeat(n), 0, n).length);
        assertEquals(2, GPT2.split(" ".repeat(n) + "x", 0, n + 1).length);
    }

    @Test
    void shouldNameTheSupportedOnesWhenPreTokenizerIsUnknown() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PreTokenizer.forName("mystery-bpe"));
        assertTrue(e.getMessage().contains("'mystery-bpe'"), e.getMessage());
        for (String name : List.of("default", "llama-bpe", "qwen2", "smollm", "gpt-2")) {
            assertTrue(e.getMessage().contains(name), e.getMessage());
        }
        assertEquals(PreTokenizer.supportedNames().size(), PreTokenizer.supportedNames().stream().distinct().count());
    }
}
