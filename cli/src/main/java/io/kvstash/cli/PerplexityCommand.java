package io.kvstash.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvstash.engine.EngineOptions;
import io.kvstash.engine.InferenceEngine;
import io.kvstash.engine.Perplexity;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "perplexity", mixinStandardHelpOptions = true,
        description = "Perplexity of a text file with llama.cpp's protocol: windows of --ctx tokens, each starting with BOS "
                + "from an empty cache, scoring the second half. Prints one JSON object.")
final class PerplexityCommand implements Callable<Integer> {
    @Mixin
    EngineOptionsMixin engine;

    @Option(names = {"-f", "--file"}, required = true, paramLabel = "TEXT", description = "UTF-8 text file.")
    Path file;

    @Option(names = "--ctx", paramLabel = "N", description = "Window size in tokens (default 128).")
    int ctx = 128;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws IOException {
        if (ctx < 4) {
            throw new IllegalArgumentException("--ctx must be at least 4, got " + ctx);
        }
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw new IllegalArgumentException(file + ": no such file");
        }
        EngineOptions options = engine.options();
        options = options.withContextLength(Math.max(ctx, options.contextLength()));
        try (InferenceEngine e = InferenceEngine.open(engine.model, options)) {
            long started = System.nanoTime();
            Perplexity.Result r = Perplexity.measure(e, text, ctx);
            double seconds = (System.nanoTime() - started) / 1e9;
            ObjectNode json = new ObjectMapper().createObjectNode();
            json.put("model", engine.model.getFileName().toString());
            json.put("file", file.toString());
            json.put("ctx", ctx);
            json.put("kv", options.kvFormat().name());
            json.put("windows", r.windows());
            json.put("tokens", r.scoredTokens());
            json.put("file_tokens", r.fileTokens());
            json.put("ppl", r.perplexity());
            json.put("seconds", Math.round(seconds * 1000) / 1000.0);
            spec.commandLine().getOut().println(json);
        }
        return 0;
    }
}
