package io.kvstash.engine.sampling;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Comparator;
import java.util.Random;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class SamplerFilterTest {

    /** Chi-square critical values at p = 0.001; the draws are seeded, so a pass or fail is repeatable. */
    private static final double CHI_SQUARE_5_DF = 20.515;
    private static final double CHI_SQUARE_3_DF = 16.266;

    private static final SamplingParams UNFILTERED = new SamplingParams(1f, 0, 1f, 0f, 1f, 0, 2024L);

    @Test
    void shouldMatchSoftmaxWhenTemperatureIsOneWithoutFilters() {
        float[] logits = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, 0.2f};
        double[] expected = DrawCounts.softmax(logits, 1.0);

        DrawCounts counts = DrawCounts.of(new Sampler(UNFILTERED, logits.length), logits, 60_000);

        assertTrue(counts.chiSquare(expected) < CHI_SQUARE_5_DF, "chi-square " + counts.chiSquare(expected));
        assertTrue(counts.maxAbsoluteDifference(expected) < 0.01, "max diff " + counts.maxAbsoluteDifference(expected));
    }

    @Test
    void shouldMatchRenormalisedSoftmaxWhenTopKCuts() {
        float[] logits = {0.3f, 1.2f, -0.4f, 0.9f, 0.1f, 1.0f, -2f, 0.5f};
        boolean[] topFour = {false, true, false, true, false, true, false, true};
        double[] expected = DrawCounts.softmax(logits, 1.0, topFour);

        DrawCounts counts = DrawCounts.of(new Sampler(UNFILTERED.withTopK(4), logits.length), logits, 40_000);

        assertTrue(counts.chiSquare(expected) < CHI_SQUARE_3_DF, "chi-square " + counts.chiSquare(expected));
    }

    @Test
    void shouldMatchScaledSoftmaxWhenTemperatureIsNotOne() {
        float[] logits = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, 0.2f};

        for (float temperature : new float[] {0.5f, 2.0f}) {
            double[] expected = DrawCounts.softmax(logits, temperature);
            Sampler sampler = new Sampler(UNFILTERED.withTemperature(temperature), logits.length);

            DrawCounts counts = DrawCounts.of(sampler, logits, 60_000);

            assertTrue(counts.chiSquare(expected) < CHI_SQUARE_5_DF,
                    "temperature " + temperature + ": chi-square " + counts.chiSquare(expected));
        }
    }

    @Test
    void shouldSharpenWhenTemperatureIsLowered() {
        float[] logits = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, 0.2f};
        double previous = 0;

        for (float temperature : new float[] {3.0f, 1.0f, 0.5f, 0.2f}) {
            Sampler sampler = new Sampler(UNFILTERED.withTemperature(temperature), logits.length);
            double best = DrawCounts.of(sampler, logits, 20_000).frequency(4);

            assertTrue(best > previous + 0.05,
                    "temperature " + temperature + " gave the best token " + best + ", previous " + previous);
            previous = best;
        }
        assertTrue(previous > 0.95, "at temperature 0.2 the best token should dominate: " + previous);
    }

    @Test
    void shouldMatchGreedyWhenTopKIsOne() {
        Random rows = new Random(5);
        Sampler topOne = new Sampler(UNFILTERED.withTopK(1).withTemperature(1.5f), 3000);
        Sampler greedy = new Sampler(SamplingParams.greedy(), 3000);

        for (int row = 0; row < 200; row++) {
            float[] logits = SamplerTest.gaussianLogits(rows, 3000, 1f);
            assertEquals(greedy.sample(logits.clone()), topOne.sample(logits.clone()), "row " + row);
        }
    }

    @Test
    void shouldDrawOnlyTheBestTokensWhenTopKCutsLargeVocabulary() {
        float[] logits = SamplerTest.gaussianLogits(new Random(17), 32_000, 2f);
        int[] ranked = rankedIds(logits);
        boolean[] topForty = new boolean[logits.length];
        for (int i = 0; i < 40; i++) {
            topForty[ranked[i]] = true;
        }
        // A huge temperature makes the survivors near-uniform, so every one of them shows up.
        Sampler sampler = new Sampler(UNFILTERED.withTopK(40).withTemperature(1000f), logits.length);

        DrawCounts counts = DrawCounts.of(sampler, logits, 4000);

        assertDrawnExactly(topForty, counts);
    }

    @ParameterizedTest(name = "topK = {0}")
    @ValueSource(ints = {0, 3})
    void shouldKeepOnlyTopTokenWhenTopPIsSmall(int topK) {
        float[] logits = {1.5f, 2f, 1f, 0.5f};
        Sampler sampler = new Sampler(UNFILTERED.withTopK(topK).withTopP(0.1f), logits.length);

        DrawCounts counts = DrawCounts.of(sampler, logits, 2000);

        assertEquals(2000, counts.count(1));
    }

    @Test
    void shouldMatchRenormalisedNucleusWhenTopPCuts() {
        // Probabilities 0.5, 0.25, 0.15, 0.1: top-p 0.8 keeps the first three (0.5 + 0.25 < 0.8 <= 0.9).
        float[] logits = {(float) Math.log(0.1), (float) Math.log(0.25), (float) Math.log(0.5), (float) Math.log(0.15)};
        boolean[] nucleus = {false, true, true, true};
        double[] expected = DrawCounts.softmax(logits, 1.0, nucleus);
        Sampler sampler = new Sampler(UNFILTERED.withTopP(0.8f), logits.length);

        DrawCounts counts = DrawCounts.of(sampler, logits, 30_000);

        assertTrue(counts.chiSquare(expected) < CHI_SQUARE_3_DF, "chi-square " + counts.chiSquare(expected));
    }

    @Test
    void shouldDrawExactlyTheNucleusWhenTopPCutsLargeVocabulary() {
        // 30 strong tokens hold about 93% of the mass; top-p 0.95 has to reach a few hundred tail tokens,
        // which is where sorting only the tokens above the (1 - topP) / V bound must not lose any.
        Random random = new Random(23);
        float[] logits = SamplerTest.gaussianLogits(random, 8000, 1f);
        for (int i = 0; i < 30; i++) {
            logits[random.nextInt(logits.length)] = 8.7f + (float) random.nextGaussian() * 0.1f;
        }
        boolean[] nucleus = nucleus(logits, 0.95);
        int nucleusSize = (int) IntStream.range(0, logits.length).filter(i -> nucleus[i]).count();
        assertTrue(nucleusSize > 100 && nucleusSize < 600, "nucleus of " + nucleusSize + " makes a weak test");
        Sampler sampler = new Sampler(UNFILTERED.withTopP(0.95f).withTemperature(1000f), logits.length);

        DrawCounts counts = DrawCounts.of(sampler, logits, nucleusSize * 40);

        assertDrawnExactly(nucleus, counts);
    }

    @ParameterizedTest(name = "topK = {0}")
    @ValueSource(ints = {0, 3})
    void shouldDropUnlikelyTokensWhenMinPFilters(int topK) {
        // Relative to the best (logit 2): token 0 at e^-0.1 = 0.90 stays, tokens at e^-2 and e^-3 go.
        float[] logits = {1.9f, 0f, 2f, -1f};
        boolean[] kept = {true, false, true, false};
        double[] expected = DrawCounts.softmax(logits, 1.0, kept);
        Sampler sampler = new Sampler(UNFILTERED.withTopK(topK).withMinP(0.5f), logits.length);

        DrawCounts counts = DrawCounts.of(sampler, logits, 10_000);

        assertEquals(0, counts.count(1) + counts.count(3));
        assertTrue(counts.maxAbsoluteDifference(expected) < 0.02, "max diff " + counts.maxAbsoluteDifference(expected));
    }

    @ParameterizedTest(name = "topK = {0}")
    @ValueSource(ints = {0, 2})
    void shouldApplyMinPBeforeTemperatureWhenBothAreSet(int topK) {
        // llama.cpp order: min-p sees the temperature-1 probabilities, so a high temperature must not
        // let token 1 (e^-2 = 0.135 of the best) back in, nor a low one push token 0 (0.90) out.
        float[] logits = {1.9f, 0f, 2f};

        for (float temperature : new float[] {0.05f, 20f}) {
            Sampler sampler = new Sampler(UNFILTERED.withTopK(topK).withMinP(0.5f).withTemperature(temperature), logits.length);

            DrawCounts counts = DrawCounts.of(sampler, logits, 5000);

            assertEquals(0, counts.count(1), "temperature " + temperature);
            assertTrue(counts.count(0) > 0, "temperature " + temperature);
        }
    }

    private static void assertDrawnExactly(boolean[] allowed, DrawCounts counts) {
        for (int id = 0; id < allowed.length; id++) {
            if (allowed[id]) {
                assertTrue(counts.count(id) > 0, "token " + id + " should survive the filter but was never drawn");
            } else {
                assertEquals(0, counts.count(id), "token " + id + " should have been filtered out");
            }
        }
    }

    /** The reference: a full sort, then the shortest best-first prefix whose probability reaches topP. */
    private static boolean[] nucleus(float[] logits, double topP) {
        int[] ranked = rankedIds(logits);
        double[] probabilities = DrawCounts.softmax(logits, 1.0);
        boolean[] kept = new boolean[logits.length];
        double cumulative = 0;
        for (int id : ranked) {
            kept[id] = true;
            cumulative += probabilities[id];
            if (cumulative >= topP) {
                break;
            }
        }
        return kept;
    }

    private static int[] rankedIds(float[] logits) {
        return IntStream.range(0, logits.length)
                .boxed()
                .sorted(Comparator.<Integer>comparingDouble(id -> -logits[id]).thenComparingInt(id -> id))
                .mapToInt(Integer::intValue)
                .toArray();
    }
}
