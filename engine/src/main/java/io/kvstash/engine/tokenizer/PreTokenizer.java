package io.kvstash.engine.tokenizer;

import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.SequencedSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The splitting of text into words before byte-level BPE, chosen by {@code tokenizer.ggml.pre}
 * with llama.cpp's regular expressions for that name ({@code llm_tokenizer_bpe}). BPE merges
 * never cross a word boundary.
 *
 * <p>Each expression of a chain cuts every word left by the previous one; text an expression
 * does not match stays a word of its own, as in llama.cpp's {@code unicode_regex_split}. Each
 * piece is matched in isolation (opaque region bounds), so {@code \s+(?!\S)} sees the end of
 * the piece as the end of the text, as llama.cpp does.
 *
 * <p>llama.cpp runs the GPT-2 and Llama 3 expressions through hand-written matchers and the others
 * through {@code std::regex} on a text whose non-ASCII characters are collapsed to one byte per
 * Unicode category. Java's regex engine knows the categories, so the expressions are used as
 * they are, with two points checked against llama.cpp's code:
 * <ul>
 *   <li>{@code \s} must be Unicode White_Space (U+0085, U+00A0, U+2000..., U+3000 are
 *       whitespace to llama.cpp), hence {@link Pattern#UNICODE_CHARACTER_CLASS}.</li>
 *   <li>The case-insensitive contractions are written out ({@code '[sS]}) as llama.cpp's
 *       adapted expressions do: {@code (?i:'s)} under Unicode case folding would also take
 *       U+017F (long s) and U+212A (Kelvin sign) after an apostrophe.</li>
 * </ul>
 * Character categories come from the JDK's Unicode version, llama.cpp's from its own tables;
 * characters assigned between the two versions can be classified differently.
 */
final class PreTokenizer {
    private static final String GPT2 =
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
    private static final String CONTRACTIONS = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
    /** Llama 3: like GPT-2's but a letter run takes any one non-newline, non-digit character in front, and digits go in threes. */
    private static final String LLAMA3 = CONTRACTIONS
            + "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    /** Qwen 2: Llama 3's with single digits. */
    private static final String QWEN2 = CONTRACTIONS
            + "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

    private static final PreTokenizer DEFAULT = new PreTokenizer("default", false, false,
            "[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2, "\\p{N}+", "[0-9][0-9][0-9]");
    private static final PreTokenizer LLAMA_BPE = new PreTokenizer("llama-bpe", true, true, LLAMA3);
    private static final PreTokenizer QWEN = new PreTokenizer("qwen2", false, false, QWEN2);
    private static final PreTokenizer SMOLLM = new PreTokenizer("smollm", false, false, "\\p{N}", GPT2);
    private static final PreTokenizer GPT_2 = new PreTokenizer("gpt-2", false, false, GPT2);

    /** The names llama.cpp gives these pre-tokenizers (and "gpt2", which llama.cpp spells "gpt-2"). */
    private static final Map<String, PreTokenizer> BY_NAME = byName();

    private final String name;
    private final boolean ignoreMerges;
    private final boolean addsBos;
    private final Pattern[] patterns;

    private PreTokenizer(String name, boolean ignoreMerges, boolean addsBos, String... regexes) {
        this.name = name;
        this.ignoreMerges = ignoreMerges;
        this.addsBos = addsBos;
        this.patterns = Arrays.stream(regexes).map(r -> Pattern.compile(r, Pattern.UNICODE_CHARACTER_CLASS)).toArray(Pattern[]::new);
    }

    private static Map<String, PreTokenizer> byName() {
        Map<String, PreTokenizer> m = new LinkedHashMap<>();
        m.put("default", DEFAULT);
        for (String alias : List.of("llama-bpe", "llama3", "llama-v3")) {
            m.put(alias, LLAMA_BPE);
        }
        for (String alias : List.of("qwen2", "deepseek-r1-qwen")) {
            m.put(alias, QWEN);
        }
        m.put("smollm", SMOLLM);
        for (String alias : List.of("gpt-2", "gpt2")) {
            m.put(alias, GPT_2);
        }
        return m;
    }

    /**
     * The pre-tokenizer of that name; {@code null} (the key is absent) gives llama.cpp's
     * {@code "default"}, as llama.cpp does, which warns that quality suffers.
     *
     * @throws IllegalArgumentException for a name not listed in {@link #supportedNames()}
     */
    static PreTokenizer forName(String name) {
        if (name == null) {
            return DEFAULT;
        }
        PreTokenizer p = BY_NAME.get(name);
        if (p == null) {
            throw new IllegalArgumentException("pre-tokenizer '" + name + "' (tokenizer.ggml.pre) is not supported; supported: "
                    + String.join(", ", supportedNames()));
        }
        return p;
    }

    static SequencedSet<String> supportedNames() {
        return Collections.unmodifiableSequencedSet(new LinkedHashSet<>(BY_NAME.keySet()));
    }

    String name() {
        return name;
    }

    /** Whether a word that is itself a vocabulary entry becomes that token without merging (llama.cpp's {@code ignore_merges}, Llama 3). */
    boolean ignoreMerges() {
        return ignoreMerges;
    }

    /** llama.cpp's {@code add_bos} for this pre-tokenizer when the file has no {@code tokenizer.ggml.add_bos_token}. */
    boolean addsBosByDefault() {
        return addsBos;
    }

    /**
     * Cuts {@code text[from, to)} into words. They follow each other without gaps, so only their
     * ends are returned, in order; the first word starts at {@code from}. Empty for an empty range.
     */
    int[] split(CharSequence text, int from, int to) {
        int[] ends = from < to ? new int[] {to} : new int[0];
        int count = ends.length;
        for (Pattern pattern : patterns) {
            Matcher m = pattern.matcher(text);
            int[] next = new int[Math.max(8, count * 2)];
            int n = 0;
            int start = from;
            for (int w = 0; w < count; w++) {
                int end = ends[w];
                m.region(start, end);
                int last = start;
                while (m.find()) {
                    if (m.end() == m.start()) {
                        continue; // none of the expressions can match empty text; kept safe anyway
                    }
                    if (n + 2 > next.length) {
                        next = Arrays.copyOf(next, next.length * 2);
                    }
                    if (m.start() > last) {
                        next[n++] = m.start();
                    }
                    next[n++] = m.end();
                    last = m.end();
                }
                if (last < end) {
                    if (n == next.length) {
                        next = Arrays.copyOf(next, next.length * 2);
                    }
                    next[n++] = end;
                }
                start = end;
            }
            ends = next;
            count = n;
        }
        return count == ends.length ? ends : Arrays.copyOf(ends, count);
    }

    @Override
    public String toString() {
        return name;
    }
}
