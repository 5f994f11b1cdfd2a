package io.kvstash.engine.sampling;

/**
 * How the next token is chosen from a row of logits. The filters follow llama.cpp's meaning and
 * order (see {@link Sampler}); each one has an "off" value so a caller can switch it out without a
 * separate flag.
 *
 * @param temperature       divides the logits before the draw; {@code 0} means greedy (argmax, no randomness)
 * @param topK              keep only the {@code topK} most likely tokens; {@code 0} is off
 * @param topP              keep the smallest set of most likely tokens whose probability reaches {@code topP}; {@code 1} is off
 * @param minP              drop tokens less likely than {@code minP} times the most likely one; {@code 0} is off
 * @param repetitionPenalty shrinks the logits of tokens seen in the recent window; {@code 1} is off
 * @param repetitionWindow  how many of the most recent tokens the penalty looks at; {@code 0} is off
 * @param seed              seeds the draw, so the same seed, settings and logits give the same tokens
 */
public record SamplingParams(
        float temperature,
        int topK,
        float topP,
        float minP,
        float repetitionPenalty,
        int repetitionWindow,
        long seed) {

    public SamplingParams {
        // Negated comparisons so that NaN fails every check instead of slipping through.
        if (!(temperature >= 0f) || Float.isInfinite(temperature)) {
            throw new IllegalArgumentException("temperature must be finite and >= 0, was " + temperature);
        }
        if (topK < 0) {
            throw new IllegalArgumentException("topK must be >= 0 (0 = off), was " + topK);
        }
        if (!(topP > 0f && topP <= 1f)) {
            throw new IllegalArgumentException("topP must be in (0, 1] (1 = off), was " + topP);
        }
        if (!(minP >= 0f && minP < 1f)) {
            throw new IllegalArgumentException("minP must be in [0, 1) (0 = off), was " + minP);
        }
        if (!(repetitionPenalty > 0f) || Float.isInfinite(repetitionPenalty)) {
            throw new IllegalArgumentException(
                    "repetitionPenalty must be finite and > 0 (1 = off), was " + repetitionPenalty);
        }
        if (repetitionWindow < 0) {
            throw new IllegalArgumentException("repetitionWindow must be >= 0 (0 = off), was " + repetitionWindow);
        }
    }

    /**
     * Always the most likely token. The window is kept at the default so that
     * {@code greedy().withRepetitionPenalty(1.1f)} penalises repeats without a second change.
     */
    public static SamplingParams greedy() {
        return new SamplingParams(0f, 0, 1f, 0f, 1f, 64, 0L);
    }

    /** llama.cpp's defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no repetition penalty, window 64. */
    public static SamplingParams defaults(long seed) {
        return new SamplingParams(0.8f, 40, 0.95f, 0.05f, 1f, 64, seed);
    }

    public boolean isGreedy() {
        return temperature == 0f;
    }

    public SamplingParams withTemperature(float temperature) {
        return new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, repetitionWindow, seed);
    }

    public SamplingParams withTopK(int topK) {
        return new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, repetitionWindow, seed);
    }

    public SamplingParams withTopP(float topP) {
        return new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, repetitionWindow, seed);
    }

    public SamplingParams withMinP(float minP) {
        return new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, repetitionWindow, seed);
    }

    public SamplingParams withRepetitionPenalty(float repetitionPenalty) {
        return new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, repetitionWindow, seed);
    }

    public SamplingParams withRepetitionWindow(int repetitionWindow) {
        return new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, repetitionWindow, seed);
    }

    public SamplingParams withSeed(long seed) {
        return new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, repetitionWindow, seed);
    }
}
