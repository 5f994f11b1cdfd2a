package io.kvstash.cli;

import io.kvstash.engine.InferenceEngine;
import io.kvstash.engine.sampling.SamplingParams;
import java.io.PrintWriter;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "generate", mixinStandardHelpOptions = true, description = "Continue a prompt and print the continuation (not the prompt) to stdout.")
final class GenerateCommand implements Callable<Integer> {
    @Mixin
    EngineOptionsMixin engine;

    @Option(names = {"-p", "--prompt"}, required = true, paramLabel = "TEXT", description = "Prompt text.")
    String prompt;

    @Option(names = {"-n", "--max-tokens"}, paramLabel = "N", description = "Most tokens to generate (default 128).")
    int maxTokens = 128;

    @Option(names = "--temperature", paramLabel = "T", description = "Sampling temperature; 0 = greedy (default 0.8).")
    float temperature = 0.8f;

    @Option(names = "--top-k", paramLabel = "K", description = "Keep the K most likely tokens; 0 = off (default 40).")
    int topK = 40;

    @Option(names = "--top-p", paramLabel = "P", description = "Nucleus sampling threshold (default 0.95).")
    float topP = 0.95f;

    @Option(names = "--min-p", paramLabel = "P", description = "Drop tokens below P × the top probability (default 0.05).")
    float minP = 0.05f;

    @Option(names = "--repeat-penalty", paramLabel = "X", description = "Repetition penalty; 1 = off (default 1.0).")
    float repeatPenalty = 1.0f;

    @Option(names = "--seed", paramLabel = "S", description = "Random seed (default: random).")
    Long seed;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        if (maxTokens < 0) {
            throw new IllegalArgumentException("--max-tokens must not be negative, got " + maxTokens);
        }
        long s = seed != null ? seed : System.nanoTime();
        SamplingParams params = new SamplingParams(temperature, topK, topP, minP, repeatPenalty, 64, s);
        PrintWriter out = spec.commandLine().getOut();
        try (InferenceEngine e = engine.open()) {
            int[] ids = e.tokenizer().encode(prompt, e.tokenizer().addBosByDefault(), false);
            if (ids.length == 0) {
                throw new IllegalArgumentException("the prompt produced no tokens");
            }
            if (maxTokens > 0) {
                e.generate(ids, params, maxTokens, text -> {
                    out.print(text);
                    out.flush();
                    return true;
                });
            }
            out.println();
        }
        return 0;
    }
}
