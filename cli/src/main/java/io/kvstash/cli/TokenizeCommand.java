package io.kvstash.cli;

import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.tokenizer.Tokenizer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "tokenize", mixinStandardHelpOptions = true, description = "Print the token ids of a text as a JSON array (BOS first when the model adds one).")
final class TokenizeCommand implements Callable<Integer> {
    @Option(names = {"-m", "--model"}, required = true, paramLabel = "FILE", description = "GGUF model or vocabulary file.")
    Path model;

    @Option(names = "--text", required = true, paramLabel = "TEXT", description = "Text to tokenize.")
    String text;

    @Option(names = "--parse-special", description = "Turn special-token text such as <s> into control tokens.")
    boolean parseSpecial;

    @Option(names = "--no-bos", description = "Do not add the BOS token.")
    boolean noBos;

    @Option(names = "--verbose", description = "Print stack traces on errors.")
    boolean verbose;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        try (GgufFile f = GgufFile.open(model)) {
            Tokenizer tokenizer = Tokenizer.fromGguf(f);
            int[] ids = tokenizer.encode(text, !noBos && tokenizer.addBosByDefault(), parseSpecial);
            spec.commandLine().getOut().println(Arrays.toString(ids).replace(" ", ""));
        }
        return 0;
    }
}
