package io.kvstash.cli;

import java.io.PrintWriter;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The {@code kvstash} command line. Bad usage and bad input end with one line on stderr and exit
 * code 2; {@code --verbose} adds the stack trace.
 */
@Command(name = "kvstash", mixinStandardHelpOptions = true, version = "kvstash 0.1.0",
        description = "LLM chat sessions on CPU with a tiered, quantized, persistent KV cache.",
        footer = {"", "The HTTP service starts with ./kvstash serve [--model FILE] [--port N] [--data DIR] [--KEY=VALUE ...]"
                + " (./kvstash serve --help)."},
        subcommands = {GenerateCommand.class, TokenizeCommand.class, PerplexityCommand.class, SparseFidelityCommand.class, BenchCommand.class, BenchWarmCommand.class,
                BenchResumeCommand.class, BenchServeCommand.class, BenchShiftCommand.class, ConvertLlama2cCommand.class,
                CommandLine.HelpCommand.class})
public final class Main implements Runnable {
    public static final int EXIT_BAD_INPUT = 2;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "missing subcommand");
    }

    public static void main(String[] args) {
        System.exit(run(args, new PrintWriter(System.out, true), new PrintWriter(System.err, true)));
    }

    /** Runs the command line with the given streams; returns the exit code. */
    public static int run(String[] args, PrintWriter out, PrintWriter err) {
        CommandLine cli = new CommandLine(new Main());
        cli.setOut(out);
        cli.setErr(err);
        cli.setParameterExceptionHandler((e, a) -> {
            err.println("kvstash: " + e.getMessage());
            if (!(e instanceof CommandLine.UnmatchedArgumentException) || a.length > 0) {
                err.println("Try 'kvstash " + (e.getCommandLine().getCommandName().equals("kvstash") ? "" : e.getCommandLine().getCommandName() + " ") + "--help'.");
            }
            return EXIT_BAD_INPUT;
        });
        cli.setExecutionExceptionHandler((e, c, parsed) -> {
            boolean verbose = c.getParseResult() != null && c.getParseResult().hasMatchedOption("--verbose");
            String message = e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName();
            err.println("kvstash " + c.getCommandName() + ": " + (isBadInput(e) ? "" : "internal error: ") + message);
            if (verbose) {
                e.printStackTrace(err);
            }
            return isBadInput(e) ? EXIT_BAD_INPUT : 1;
        });
        return cli.execute(args);
    }

    /** Problems with what the user gave us (files, values), as opposed to defects in kvstash. */
    static boolean isBadInput(Exception e) {
        return e instanceof IllegalArgumentException
                || e instanceof io.kvstash.engine.gguf.GgufFormatException
                || e instanceof io.kvstash.engine.model.ModelFormatException
                || e instanceof io.kvstash.engine.convert.Llama2cFormatException
                || e instanceof io.kvstash.engine.ContextOverflowException
                || e instanceof java.io.IOException;
    }
}
