package io.kvstash.engine.tokenizer;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Merge order, byte fallback, special tokens and decoding rules, on small hand-made vocabularies. */
class SentencePieceTokenizerTest {

    private static TinyVocabulary letters() {
        return new TinyVocabulary()
                .piece("▁", -1).piece("a", -2).piece("b", -2).piece("c", -2).piece("x", -2)
                .piece("▁a", -3).piece("ab", -5).piece("bc", -5);
    }

    @Test
    void shouldMergeLeftmostPairFirstWhenScoresTie() {
        TinyVocabulary v = letters().withoutSpacePrefix();
        assertArrayEquals(new int[] {v.id("ab"), v.id("c")}, v.tokenizer().encode("abc", false, false));
    }

    @Test
    void shouldMergeBestScoringPairFirstWhenScoresDiffer() {
        TinyVocabulary v = letters().piece("bc", -4).withoutSpacePrefix(); // a later duplicate wins the lookup, as in llama.cpp
        assertArrayEquals(new int[] {v.id("a"), v.id("bc")}, v.tokenizer().encode("abc", false, false));
    }

    @Test
    void shouldAddSpacePrefixAndMarkSpacesWhenVocabularyWantsIt() {
        TinyVocabulary v = letters();
        assertArrayEquals(new int[] {TinyVocabulary.BOS, v.id("▁a"), v.id("b"), v.id("▁"), v.id("▁a")},
                v.tokenizer().encode("ab  a", true, false));
    }

    @Test
    void shouldNotAddSpacePrefixWhenVocabularyDisablesIt() {
        TinyVocabulary v = letters().withoutSpacePrefix();
        assertArrayEquals(new int[] {v.id("a"), v.id("▁a")}, v.tokenizer().encode("a a", false, false));
    }

    @Test
    void shouldReturnOnlyBosWhenTextIsEmpty() {
        SentencePieceTokenizer t = letters().tokenizer();
        assertArrayEquals(new int[] {TinyVocabulary.BOS}, t.encode("", true, false));
        assertArrayEquals(new int[0], t.encode("", false, false));
    }

    @Test
    void shouldFallBackToUtf8ByteTokensWhenCharacterHasNoPiece() {
        TinyVocabulary v = letters().withoutSpacePrefix();
        // é is C3 A9, 🙂 is F0 9F 99 82
        assertArrayEquals(new int[] {v.id("a"), TinyVocabulary.byteToken(0xC3), TinyVocabulary.byteToken(0xA9),
                        TinyVocabulary.byteToken(0xF0), TinyVocabulary.byteToken(0x9F), TinyVocabulary.byteToken(0x99),
                        TinyVocabulary.byteToken(0x82), TinyVocabulary.byteToken('\n')},
                v.tokenizer().encode("aé🙂\n", false, false));
    }

    @Test
    void shouldTokenizeUnpairedSurrogateAsQuestionMarkWhenTextIsMalformed() {
        TinyVocabulary v = letters().withoutSpacePrefix();
        assertArrayEquals(new int[] {v.id("a"), TinyVocabulary.byteToken('?'), v.id("b")},
                v.tokenizer().encode("a\uD83Db", false, false));
    }

    @Test
    void shouldMatchUserDefinedTokenWhenParseSpecialIsOff() {
        TinyVocabulary v = letters().userDefined("<tag>").withoutSpacePrefix();
        assertArrayEquals(new int[] {v.id("a"), v.id("<tag>"), v.id("b")}, v.tokenizer().encode("a<tag>b", false, false));
    }

    @Test
    void shouldMatchControlTokenOnlyWhenParseSpecialIsOn() {
        TinyVocabulary v = letters().withoutSpacePrefix();
        SentencePieceTokenizer t = v.tokenizer();
        int[] literal = t.encode("a<s>", false, false);
        assertEquals(1 + "<s>".length(), literal.length, "'<s>' written out must stay plain text");
        for (int id : literal) {
            assertTrue(id != TinyVocabulary.BOS);
        }
        assertArrayEquals(new int[] {v.id("a"), TinyVocabulary.BOS}, t.encode("a<s>", false, true));
    }

    @Test
    void shouldAddSpacePrefixWhenTextFollowsSpecialToken() {
        TinyVocabulary v = letters();
        assertArrayEquals(new int[] {v.id("▁a"), TinyVocabulary.EOS, v.id("▁a"), TinyVocabulary.BOS},
                v.tokenizer().encode("a</s>a<s>", false, true));
    }

    @Test
    void shouldPreferLongerSpecialTokenWhenTwoOverlap() {
        TinyVocabulary v = letters().control("<s>x").withoutSpacePrefix();
        assertArrayEquals(new int[] {v.id("<s>x"), TinyVocabulary.BOS}, v.tokenizer().encode("<s>x<s>", false, true));
    }

    @Test
    void shouldStripLeadingSpaceOnlyFromFirstIdWhenDecoding() {
        TinyVocabulary v = letters();
        SentencePieceTokenizer t = v.tokenizer();
        assertEquals("a a", t.decode(new int[] {v.id("▁a"), v.id("▁a")}));
        // llama.cpp's detokenizer: a leading BOS uses up the stripping, so its text keeps the space.
        assertEquals(" a a", t.decode(new int[] {TinyVocabulary.BOS, v.id("▁a"), v.id("▁a")}));
        assertEquals("a", t.decode(new int[] {TinyVocabulary.byteToken(' '), v.id("a")}));
    }

    @Test
    void shouldLeaveOutControlAndUnknownTokensWhenDecoding() {
        TinyVocabulary v = letters().userDefined("<tag>");
        assertEquals("b<tag>a", v.tokenizer().decode(new int[] {v.id("b"), TinyVocabulary.UNKNOWN, v.id("<tag>"),
                TinyVocabulary.EOS, v.id("a")}));
    }

    @Test
    void shouldRejectIdWhenOutsideVocabulary() {
        SentencePieceTokenizer t = letters().tokenizer();
        assertThrows(IllegalArgumentException.class, () -> t.decode(new int[] {t.vocabularySize()}));
        assertThrows(IllegalArgumentException.class, () -> t.decode(new int[] {-1}));
        assertThrows(IllegalArgumentException.class, () -> t.newDecoder().next(t.vocabularySize()));
        assertThrows(IllegalArgumentException.class, () -> t.piece(t.vocabularySize()));
    }

    @Test
    void shouldEndGenerationOnlyWhenTokenIsEos() {
        SentencePieceTokenizer t = letters().tokenizer();
        assertTrue(t.isEndOfGeneration(TinyVocabulary.EOS));
        assertFalse(t.isEndOfGeneration(TinyVocabulary.BOS));
        assertFalse(t.isEndOfGeneration(-1));
    }

    @Test
    void shouldPopBestThenLeftmostWhenQueueHoldsManyMerges() {
        MergeQueue queue = new MergeQueue(1);
        java.util.Random random = new java.util.Random(7);
        int n = 2000;
        float[] scores = new float[n];
        for (int left = 0; left < n; left++) {
            scores[left] = random.nextInt(20);
            queue.push(scores[left], left, left + 1, 2);
        }
        float lastScore = Float.POSITIVE_INFINITY;
        int lastLeft = -1;
        for (int i = 0; i < n; i++) {
            queue.pop();
            float score = scores[queue.left];
            assertTrue(score < lastScore || score == lastScore && queue.left > lastLeft, "order broken at pop " + i);
            lastScore = score;
            lastLeft = queue.left;
        }
        assertTrue(queue.isEmpty());
    }
}
