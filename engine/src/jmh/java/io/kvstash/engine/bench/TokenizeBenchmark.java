package io.kvstash.engine.bench;

import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.tokenizer.Tokenizer;
import java.nio.charset.StandardCharsets;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Encoding 100 KB of text (102400 UTF-16 chars) on one thread, without BOS or special-token parsing.
 * {@code mixed} is word-like text with punctuation, numbers, CJK and emoji, whose words repeat (so
 * the BPE word cache is warm after the first call, as for real prompts); {@code fresh} is random
 * letter strings, new for every call, so nearly every word is merged from its bytes (the cache
 * cold); {@code cjk} is Chinese without spaces, which byte-level pre-tokenizers leave as one huge word.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class TokenizeBenchmark {
    static final int CHARS = 100 * 1024;

    @Param({"ggml-vocab-llama3.gguf", "ggml-vocab-qwen2.gguf", "stories15M-q8_0.gguf"})
    public String vocabulary;

    @Param({"mixed", "fresh", "cjk"})
    public String text;

    private Tokenizer tokenizer;
    private String input;
    private long calls;

    @Setup
    public void setup() {
        try (GgufFile file = GgufFile.open(BenchModels.dir().resolve(vocabulary))) {
            tokenizer = Tokenizer.fromGguf(file);
        }
        String sample = input(0);
        System.out.printf("[%s, %s: %d chars, %d UTF-8 bytes, %d tokens] ", vocabulary, text, sample.length(),
                sample.getBytes(StandardCharsets.UTF_8).length, tokenizer.encode(sample, false, false).length);
    }

    /** Not timed: {@code fresh} gets new random words for every call, the other texts stay the same. */
    @Setup(Level.Invocation)
    public void nextInput() {
        if (input == null || text.equals("fresh")) {
            input = input(++calls);
        }
    }

    private String input(long seed) {
        return switch (text) {
            case "mixed" -> mixed(CHARS, 3);
            case "fresh" -> fresh(CHARS, seed);
            case "cjk" -> "中文没有空格也能分词吗".repeat(CHARS / 11 + 1).substring(0, CHARS);
            default -> throw new IllegalArgumentException("text " + text);
        };
    }

    @Benchmark
    public int[] encode() {
        return tokenizer.encode(input, false, false);
    }

    static String mixed(int chars, long seed) {
        String[] words = {"Once", "upon", "a", "time", "there", "was", "a", "little", "girl", "named", "Lily", ".", ",",
                "she", "liked", "to", "play", "outside", "!", "café", "日本語", "🙂", "12345", "3.14", "don't", "\n", "\n\n",
                "  ", "Привет", "(x)", "def", "f(n):", "\t", "THE", "I'LL", "über", "naïve", "—", "https://example.com"};
        Random random = new Random(seed);
        StringBuilder sb = new StringBuilder(chars + 32);
        while (sb.length() < chars) {
            sb.append(words[random.nextInt(words.length)]).append(' ');
        }
        return cut(sb, chars);
    }

    static String fresh(int chars, long seed) {
        Random random = new Random(seed);
        StringBuilder sb = new StringBuilder(chars + 32);
        while (sb.length() < chars) {
            int n = 3 + random.nextInt(9);
            for (int i = 0; i < n; i++) {
                sb.append((char) ('a' + random.nextInt(26)));
            }
            sb.append(random.nextInt(8) == 0 ? ". " : " ");
        }
        return cut(sb, chars);
    }

    private static String cut(StringBuilder sb, int chars) {
        sb.setLength(chars);
        if (Character.isHighSurrogate(sb.charAt(chars - 1))) {
            sb.setCharAt(chars - 1, ' ');
        }
        return sb.toString();
    }
}
