package io.kvstash.api.chat;

import io.kvstash.api.config.LimitsProperties;
import io.kvstash.api.problem.Problem;
import io.kvstash.api.problem.ProblemException;
import io.kvstash.engine.InferenceEngine;
import org.springframework.stereotype.Component;

/**
 * How many tokens a prompt (or a prefix) may have: {@code kvstash.limits.max-prompt-tokens}, and
 * fewer than the context length so that a reply fits. Past either, a 400 naming the limit.
 */
@Component
public class PromptLimits {
    private final LimitsProperties limits;
    private final InferenceEngine engine;

    public PromptLimits(LimitsProperties limits, InferenceEngine engine) {
        this.limits = limits;
        this.engine = engine;
    }

    /**
     * @param what  the thing measured, for the message ("prompt", "prefix")
     * @param param the request field at fault
     */
    public void check(int tokens, String what, String param) {
        if (tokens > limits.maxPromptTokens()) {
            throw ProblemException.limit(Problem.PROMPT_TOO_LONG, "kvstash.limits.max-prompt-tokens", param,
                    "the " + what + " has " + tokens + " tokens, more than kvstash.limits.max-prompt-tokens = " + limits.maxPromptTokens());
        }
        if (tokens >= engine.contextLength()) {
            throw ProblemException.limit(Problem.PROMPT_TOO_LONG, "kvstash.engine.context-length", param,
                    "the " + what + " has " + tokens + " tokens, leaving no room for a reply in kvstash.engine.context-length = "
                            + engine.contextLength());
        }
    }
}
