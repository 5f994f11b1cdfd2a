package io.kvstash.engine.sampling;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class SamplerTest {

    @Test
    void shouldPickArgmaxWhenTemperatureIsZero() {
        Random random = new Random(11);
        for (int row = 0; row < 50; row++) {
            float[] logits = gaussianLogits(random, 2000, 3f);
            int expected = 0;
            for (int id = 1; id < logits.length; id++) {
                expected = logits[id] > logits[expected] ? id : expected;
            }

            assertEquals(expected, new Sampler(SamplingParams.greedy(), logits.length).sample(logits));
        }
    }

    @Test
    void shouldPickLowestIdWhenGreedyLogitsTie() {
        float[] logits = {1f, 3f, 0f, 3f, 3f};

        assertEquals(1, new Sampler(SamplingParams.greedy(), 5).sample(logits));
    }

    @Test
    void shouldIgnoreSeedAndFiltersWhenTemperatureIsZero() {
        SamplingParams greedyWithFilters = SamplingParams.defaults(1L).withTemperature(0f);
        Sampler first = new Sampler(greedyWithFilters, 6);
        Sampler second = new Sampler(greedyWithFilters.withSeed(2L), 6);
        float[] logits = {0.2f, 0.1f, 0.3f, 0.29f, -1f, 0.3f};

        for (int i = 0; i < 20; i++) {
            assertEquals(2, first.sample(logits.clone()));
            assertEquals(2, second.sample(logits.clone()));
        }
    }

    @Test
    void shouldRepeatSequenceWhenSeedIsSame() {
        int[] first = drawSequence(SamplingParams.defaults(42L), 200);
        int[] second = drawSequence(SamplingParams.defaults(42L), 200);

        assertArrayEquals(first, second);
    }

    @Test
    void shouldDivergeWhenSeedDiffers() {
        int[] first = drawSequence(SamplingParams.defaults(42L), 200);
        int[] second = drawSequence(SamplingParams.defaults(43L), 200);

        int differing = 0;
        for (int i = 0; i < first.length; i++) {
            differing += first[i] != second[i] ? 1 : 0;
        }
        // Over 16 near-equal tokens two independent draws agree about 1 time in 16.
        assertTrue(differing > 150, "only " + differing + " of 200 draws differed");
    }

    @Test
    void shouldVaryTokensWhenDistributionIsFlat() {
        int[] draws = drawSequence(SamplingParams.defaults(42L), 200);

        boolean[] seen = new boolean[16];
        int distinct = 0;
        for (int token : draws) {
            distinct += seen[token] ? 0 : 1;
            seen[token] = true;
        }
        assertEquals(16, distinct);
    }

    @Test
    void shouldNeverPickMaskedTokenWhenOthersRemain() {
        float[] logits = {Float.NEGATIVE_INFINITY, 0f, Float.NEGATIVE_INFINITY, 0f, Float.NEGATIVE_INFINITY};
        Sampler sampler = new Sampler(new SamplingParams(1f, 0, 1f, 0f, 1f, 0, 3L), logits.length);

        DrawCounts counts = DrawCounts.of(sampler, logits, 2000);

        assertEquals(0, counts.count(0) + counts.count(2) + counts.count(4));
        assertTrue(counts.count(1) > 800 && counts.count(3) > 800);
    }

    @ParameterizedTest(name = "topK = {0}")
    @ValueSource(ints = {0, 2})
    void shouldRejectLogitsWhenEveryTokenIsMasked(int topK) {
        float[] logits = {Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY};
        Sampler drawing = new Sampler(SamplingParams.defaults(1L).withTopK(topK), 3);
        Sampler greedy = new Sampler(SamplingParams.greedy(), 3);

        assertThrows(IllegalArgumentException.class, () -> drawing.sample(logits.clone()));
        assertThrows(IllegalArgumentException.class, () -> greedy.sample(logits.clone()));
    }

    @ParameterizedTest(name = "topK = {0}")
    @ValueSource(ints = {0, 2})
    void shouldRejectLogitsWhenOneIsNaNOrPositiveInfinity(int topK) {
        Sampler drawing = new Sampler(SamplingParams.defaults(1L).withTopK(topK), 3);
        Sampler greedy = new Sampler(SamplingParams.greedy(), 3);

        for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY}) {
            float[] logits = {0f, bad, 1f};
            IllegalArgumentException rejection =
                    assertThrows(IllegalArgumentException.class, () -> drawing.sample(logits.clone()));
            assertTrue(rejection.getMessage().contains("logits[1]"), rejection.getMessage());
            assertThrows(IllegalArgumentException.class, () -> greedy.sample(logits.clone()));
        }
    }

    @Test
    void shouldRejectLogitsWhenLengthDiffersFromVocabulary() {
        Sampler sampler = new Sampler(SamplingParams.defaults(1L), 4);

        IllegalArgumentException rejection =
                assertThrows(IllegalArgumentException.class, () -> sampler.sample(new float[5]));
        assertTrue(rejection.getMessage().contains("logits"), rejection.getMessage());
    }

    @Test
    void shouldRejectRecentTokensWhenIdIsOutsideVocabularyOrCountOutsideArray() {
        Sampler sampler = new Sampler(SamplingParams.defaults(1L).withRepetitionPenalty(1.1f), 4);

        IllegalArgumentException outside = assertThrows(IllegalArgumentException.class,
                () -> sampler.sample(new float[4], new int[] {1, 4}, 2));
        assertTrue(outside.getMessage().contains("recentTokens[1]"), outside.getMessage());
        IllegalArgumentException count = assertThrows(IllegalArgumentException.class,
                () -> sampler.sample(new float[4], new int[] {1, 2}, 3));
        assertTrue(count.getMessage().contains("recentCount"), count.getMessage());
    }

    @Test
    void shouldRejectVocabularyWhenNotPositive() {
        IllegalArgumentException rejection = assertThrows(IllegalArgumentException.class,
                () -> new Sampler(SamplingParams.greedy(), 0));
        assertTrue(rejection.getMessage().contains("vocabularySize"), rejection.getMessage());
    }

    /** A fresh sampler over a fixed sequence of flat-ish 16-token rows, the same rows for every call. */
    private static int[] drawSequence(SamplingParams params, int length) {
        Random rows = new Random(99);
        Sampler sampler = new Sampler(params, 16);
        int[] tokens = new int[length];
        for (int i = 0; i < length; i++) {
            tokens[i] = sampler.sample(gaussianLogits(rows, 16, 0.1f));
        }
        return tokens;
    }

    static float[] gaussianLogits(Random random, int size, float spread) {
        float[] logits = new float[size];
        for (int i = 0; i < size; i++) {
            logits[i] = (float) random.nextGaussian() * spread;
        }
        return logits;
    }
}
