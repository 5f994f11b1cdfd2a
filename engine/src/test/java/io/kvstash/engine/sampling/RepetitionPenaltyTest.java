package io.kvstash.engine.sampling;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class RepetitionPenaltyTest {

    private static final SamplingParams GREEDY_PENALISED = SamplingParams.greedy().withRepetitionPenalty(2f);

    @Test
    void shouldDividePositiveLogitWhenTokenIsRecent() {
        float[] logits = {2f, 1.5f, 0.5f};

        int chosen = new Sampler(GREEDY_PENALISED, 3).sample(logits, new int[] {0}, 1);

        assertEquals(1, chosen);
        assertArrayEquals(new float[] {1f, 1.5f, 0.5f}, logits, "the penalty is written into the caller's logits");
    }

    @Test
    void shouldMultiplyNegativeLogitWhenTokenIsRecent() {
        // Dividing -1 by 2 would raise it to -0.5 and keep token 0 on top; multiplying lowers it to -2.
        float[] logits = {-1f, -1.2f, -3f};

        int chosen = new Sampler(GREEDY_PENALISED, 3).sample(logits, new int[] {0}, 1);

        assertEquals(1, chosen);
        assertArrayEquals(new float[] {-2f, -1.2f, -3f}, logits);
    }

    @Test
    void shouldLowerChanceWhenRepeatedTokenHasPositiveLogit() {
        assertPenaltyLowersChance(new float[] {1f, 1f, 1f}, new float[] {1f / 1.5f, 1f, 1f});
    }

    @Test
    void shouldLowerChanceWhenRepeatedTokenHasNegativeLogit() {
        assertPenaltyLowersChance(new float[] {-1f, -1f, -1f}, new float[] {-1.5f, -1f, -1f});
    }

    @Test
    void shouldPenaliseOnceWhenTokenRepeatsInWindow() {
        float[] logits = {4f, 3f, 0f};

        new Sampler(GREEDY_PENALISED, 3).sample(logits, new int[] {0, 0, 0}, 3);

        assertArrayEquals(new float[] {2f, 3f, 0f}, logits);
    }

    @Test
    void shouldIgnoreTokensWhenOlderThanWindowOrBeyondCount() {
        float[] logits = {4f, 4f, 4f, 4f};
        // Window 2 over the first 3 valid entries: tokens 1 and 2 only; 0 is too old, 3 is not valid yet.
        Sampler sampler = new Sampler(GREEDY_PENALISED.withRepetitionWindow(2), 4);

        sampler.sample(logits, new int[] {0, 1, 2, 3}, 3);

        assertArrayEquals(new float[] {4f, 2f, 2f, 4f}, logits);
    }

    @Test
    void shouldLeaveLogitsAloneWhenPenaltyIsOne() {
        float[] logits = {4f, -4f, 1f};

        new Sampler(SamplingParams.defaults(3L), 3).sample(logits, new int[] {0, 1, 2}, 3);

        assertArrayEquals(new float[] {4f, -4f, 1f}, logits);
    }

    @Test
    void shouldPenaliseEachCallAfreshWhenSamplerIsReused() {
        Sampler sampler = new Sampler(GREEDY_PENALISED, 3);
        sampler.sample(new float[] {4f, 3f, 0f}, new int[] {0}, 1);
        float[] next = {4f, 3f, 0f};

        sampler.sample(next, new int[] {0}, 1);

        assertArrayEquals(new float[] {2f, 3f, 0f}, next, "a mark left by the previous call must not skip the penalty");
    }

    /** Draws with token 0 recent and penalty 1.5, and checks it against softmax of the penalised logits. */
    private static void assertPenaltyLowersChance(float[] logits, float[] penalised) {
        SamplingParams params = new SamplingParams(1f, 0, 1f, 0f, 1.5f, 64, 77L);
        Sampler withPenalty = new Sampler(params, 3);
        Sampler withoutPenalty = new Sampler(params.withRepetitionPenalty(1f), 3);
        int draws = 30_000;
        int penalisedHits = 0;
        int plainHits = 0;
        for (int i = 0; i < draws; i++) {
            penalisedHits += withPenalty.sample(logits.clone(), new int[] {0}, 1) == 0 ? 1 : 0;
            plainHits += withoutPenalty.sample(logits.clone(), new int[] {0}, 1) == 0 ? 1 : 0;
        }
        double expected = DrawCounts.softmax(penalised, 1.0)[0];

        assertTrue(penalisedHits < plainHits, penalisedHits + " penalised vs " + plainHits + " plain");
        assertEquals(expected, (double) penalisedHits / draws, 0.01);
        assertEquals(1.0 / 3, (double) plainHits / draws, 0.01);
    }
}
