package io.kvstash.api.chat;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import io.kvstash.api.problem.ProblemException;
import io.kvstash.engine.sampling.SamplingParams;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Sampling settings a request (or a session's defaults) may give; null fields fall back to the
 * next level, and finally to llama.cpp's defaults (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05).
 * Temperature 0 is greedy.
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record SamplingRequest(Double temperature, @JsonProperty("top_p") Double topP, @JsonProperty("top_k") Integer topK,
                              @JsonProperty("min_p") Double minP, @JsonProperty("repetition_penalty") Double repetitionPenalty,
                              Long seed) {
    public static final SamplingRequest NONE = new SamplingRequest(null, null, null, null, null, null);

    /** These settings where given, else {@code fallback}'s. */
    public SamplingRequest over(SamplingRequest fallback) {
        if (fallback == null) {
            return this;
        }
        return new SamplingRequest(temperature != null ? temperature : fallback.temperature, topP != null ? topP : fallback.topP,
                topK != null ? topK : fallback.topK, minP != null ? minP : fallback.minP,
                repetitionPenalty != null ? repetitionPenalty : fallback.repetitionPenalty, seed != null ? seed : fallback.seed);
    }

    /** Checks every given field; a bad one is a 400 naming it. */
    public SamplingRequest validated() {
        if (temperature != null && !(temperature >= 0 && temperature <= 2)) {
            throw ProblemException.invalid("temperature", "temperature must be between 0 and 2, got " + temperature);
        }
        if (topP != null && !(topP > 0 && topP <= 1)) {
            throw ProblemException.invalid("top_p", "top_p must be in (0, 1], got " + topP);
        }
        if (topK != null && topK < 0) {
            throw ProblemException.invalid("top_k", "top_k must be >= 0 (0 = off), got " + topK);
        }
        if (minP != null && !(minP >= 0 && minP < 1)) {
            throw ProblemException.invalid("min_p", "min_p must be in [0, 1), got " + minP);
        }
        if (repetitionPenalty != null && !(repetitionPenalty > 0 && repetitionPenalty <= 10)) {
            throw ProblemException.invalid("repetition_penalty", "repetition_penalty must be in (0, 10], got " + repetitionPenalty);
        }
        return this;
    }

    public SamplingParams toParams() {
        validated();
        SamplingParams p = SamplingParams.defaults(seed != null ? seed : ThreadLocalRandom.current().nextLong());
        if (temperature != null) {
            p = p.withTemperature(temperature.floatValue());
        }
        if (topP != null) {
            p = p.withTopP(topP.floatValue());
        }
        if (topK != null) {
            p = p.withTopK(topK);
        }
        if (minP != null) {
            p = p.withMinP(minP.floatValue());
        }
        if (repetitionPenalty != null) {
            p = p.withRepetitionPenalty(repetitionPenalty.floatValue());
        }
        return p;
    }
}
