package io.kvstash.engine.convert;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvstash.engine.EngineOptions;
import io.kvstash.engine.InferenceEngine;
import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.kernel.ComputePool;
import io.kvstash.engine.kv.KvCache;
import io.kvstash.engine.kv.KvFormat;
import io.kvstash.engine.kv.KvGeometry;
import io.kvstash.engine.kv.SlabKvStore;
import io.kvstash.engine.model.ForwardPass;
import io.kvstash.engine.model.LlamaModel;
import io.kvstash.engine.model.ModelConfig;
import io.kvstash.engine.sampling.SamplingParams;
import io.kvstash.engine.testing.TestModels;
import io.kvstash.engine.tokenizer.Tokenizer;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class Llama2cConverterTest {
    /** dim 32, hidden 72, 2 layers, 4 heads sharing 2 KV heads (head size 8), vocabulary 259 + 12, seq_len 64. */
    static final Llama2cHeader TINY = new Llama2cHeader(32, 72, 2, 4, 2, 259 + TinyVocabulary.WORDS.size(), true, 64);
    static final List<String> TEXTS = List.of("Once upon a time, there was a little girl.", " the cat sat", "\n\nHello\tworld!",
            "naïve café 😀 日本", "", "<s> not a control token </s>", "a  b   c");

    @TempDir
    Path dir;

    // ---- (a) round trip through llama2.c's format --------------------------------------------

    /**
     * stories260K written out as llama2.c would have exported it (it has its own classifier, so
     * vocab_size goes negative and wcls follows), then converted back: same vocabulary, same
     * tokenization, and logits equal bit for bit, since the engine sees the very same F32 values.
     */
    @ParameterizedTest(name = "byte pieces as characters: {0}")
    @ValueSource(booleans = {true, false})
    void shouldGiveBitIdenticalLogitsAndTokensWhenStories260KGoesThroughLlama2c(boolean charBytePieces) throws IOException {
        Path original = TestModels.model("stories260K-f32.gguf");
        Path model = dir.resolve("model.bin");
        Path tokenizer = dir.resolve("tokenizer.bin");
        try (GgufFile f = GgufFile.open(original)) {
            Llama2cCheckpoint.fromGguf(f).writeModel(model);
            Files.write(tokenizer, Llama2cCheckpoint.tokenizerBytes(f.getStringArray("tokenizer.ggml.tokens"),
                    f.getFloatArray("tokenizer.ggml.scores"), charBytePieces));
        }
        Path converted = dir.resolve("stories260K.gguf");
        Llama2cConverter.Result result = Llama2cConverter.convert(FileSlice.whole(model), FileSlice.whole(tokenizer), "stories260K", converted);
        assertFalse(result.header().sharedClassifier());
        assertEquals(Files.size(converted), result.fileBytes());

        try (GgufFile a = GgufFile.open(original); GgufFile b = GgufFile.open(converted)) {
            assertArrayEquals(a.getStringArray("tokenizer.ggml.tokens"), b.getStringArray("tokenizer.ggml.tokens"));
            assertArrayEquals(a.getFloatArray("tokenizer.ggml.scores"), b.getFloatArray("tokenizer.ggml.scores"));
            assertArrayEquals(a.getIntArray("tokenizer.ggml.token_type"), b.getIntArray("tokenizer.ggml.token_type"));
            for (String key : List.of("llama.context_length", "llama.embedding_length", "llama.feed_forward_length", "llama.block_count",
                    "llama.attention.head_count", "llama.attention.head_count_kv", "llama.rope.dimension_count",
                    "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id")) {
                assertEquals(a.getLong(key), b.getLong(key), key);
            }
            assertEquals(a.getFloat("llama.attention.layer_norm_rms_epsilon"), b.getFloat("llama.attention.layer_norm_rms_epsilon"));
            assertEquals(a.tensors().keySet().stream().sorted().toList(), b.tensors().keySet().stream().sorted().toList());

            Tokenizer ta = Tokenizer.fromGguf(a);
            Tokenizer tb = Tokenizer.fromGguf(b);
            for (String text : TEXTS) {
                assertArrayEquals(ta.encode(text, true, false), tb.encode(text, true, false), "tokens of '" + text + "'");
                assertArrayEquals(ta.encode(text, true, true), tb.encode(text, true, true), "tokens of '" + text + "' parsing specials");
            }

            int[] prompt = ta.encode(TEXTS.get(0) + TEXTS.get(1), true, false);
            float[] expected = allLogits(a, prompt);
            float[] actual = allLogits(b, prompt);
            assertEquals(expected.length, actual.length);
            for (int i = 0; i < expected.length; i++) {
                if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])) {
                    int vocab = expected.length / prompt.length;
                    throw new AssertionError("logit " + i % vocab + " at position " + i / vocab + ": " + actual[i] + " instead of " + expected[i]);
                }
            }
        }
    }

    // ---- (b) a synthetic checkpoint, no model files needed -----------------------------------

    /** The converted file computes what llama2.c's own forward pass computes from the checkpoint's arrays. */
    @ParameterizedTest(name = "shared classifier: {0}")
    @ValueSource(booleans = {true, false})
    void shouldMatchRunCWhenRandomCheckpointIsConverted(boolean shared) throws IOException {
        Llama2cHeader h = new Llama2cHeader(TINY.dim(), TINY.hiddenDim(), TINY.layers(), TINY.heads(), TINY.kvHeads(), TINY.vocabSize(),
                shared, TINY.seqLen());
        Llama2cCheckpoint checkpoint = Llama2cCheckpoint.random(h, shared ? 1 : 2);
        Path gguf = convert(checkpoint, TinyVocabulary.tokenizerBytes(true));

        int[] tokens = {1, 270, 17, 265, 100, 42, 259, 3, 268, 2, 120, 5};
        RunCForward runC = new RunCForward(checkpoint);
        try (GgufFile f = GgufFile.open(gguf)) {
            assertEquals(shared, f.tensor("output.weight") == null, "output.weight only when the classifier is not shared");
            float[] logits = allLogits(f, tokens);
            int vocab = h.vocabSize();
            for (int p = 0; p < tokens.length; p++) {
                float[] expected = runC.next(tokens[p]);
                for (int v = 0; v < vocab; v++) {
                    float got = logits[p * vocab + v];
                    double err = Math.abs(got - expected[v]) / Math.max(1, Math.abs(expected[v]));
                    assertTrue(err < 1e-4, "position " + p + " token " + v + ": " + got + " vs run.c " + expected[v]);
                }
            }
        }
    }

    /** Opened as the service opens models: tokenizes, and greedy generation picks run.c's argmax tokens. */
    @Test
    void shouldLoadTokenizeAndGenerateWhenRandomCheckpointIsConverted() throws IOException {
        Llama2cCheckpoint checkpoint = Llama2cCheckpoint.random(TINY, 3);
        Path gguf = convert(checkpoint, TinyVocabulary.tokenizerBytes(true));
        try (InferenceEngine engine = InferenceEngine.open(gguf, EngineOptions.defaults().withThreads(1).withKvFormat(KvFormat.F32))) {
            assertEquals(TINY.seqLen(), engine.contextLength());
            Tokenizer t = engine.tokenizer();
            // "x" has no piece: "▁x" becomes the piece "▁" and the byte token <0x78>.
            int[] prompt = t.encode("the cat x", true, false);
            assertArrayEquals(new int[] {1, TinyVocabulary.id("▁the"), TinyVocabulary.id("▁cat"), TinyVocabulary.id("▁"), 3 + 'x'}, prompt);
            assertEquals("the cat x", t.decode(Arrays.copyOfRange(prompt, 1, prompt.length)));

            InferenceEngine.Generation g = engine.generate(prompt, SamplingParams.greedy(), 10, s -> true);
            RunCForward runC = new RunCForward(checkpoint);
            float[] logits = null;
            for (int token : prompt) {
                logits = runC.next(token);
            }
            List<Integer> expected = new ArrayList<>();
            while (expected.size() < 10) {
                int next = argmax(logits);
                if (next == Llama2cVocabulary.EOS_ID) {
                    break;
                }
                expected.add(next);
                logits = runC.next(next);
            }
            int[] generated = Arrays.copyOfRange(g.tokens(), g.promptTokens(), g.tokens().length);
            assertEquals(expected, Arrays.stream(generated).boxed().toList());
        }
    }

    private static int argmax(float[] a) {
        int best = 0;
        for (int i = 1; i < a.length; i++) {
            if (a[i] > a[best]) {
                best = i;
            }
        }
        return best;
    }

    @Test
    void shouldReadModernByteEscapesAndKeepEmptyPiecesAsControlTokens() throws IOException {
        Path gguf = convert(Llama2cCheckpoint.random(TINY, 4), TinyVocabulary.tokenizerBytes(false));
        try (GgufFile f = GgufFile.open(gguf)) {
            String[] pieces = f.getStringArray("tokenizer.ggml.tokens");
            int[] types = f.getIntArray("tokenizer.ggml.token_type");
            assertEquals(List.of("<unk>", "<s>", "</s>", "<0x00>", "<0x01>"), Arrays.asList(pieces).subList(0, 5));
            assertEquals("<0xFF>", pieces[258]);
            assertArrayEquals(new int[] {2, 3, 3, 6, 6}, Arrays.copyOf(types, 5));
            assertEquals(6, types[258]);
            assertEquals("▁the", pieces[TinyVocabulary.id("▁the")]);
            assertEquals(1, types[TinyVocabulary.id("▁the")]);
            assertEquals("", pieces[TinyVocabulary.id("")]);
            assertEquals(3, types[TinyVocabulary.id("")]);
            assertEquals("llama", f.getString("general.architecture"));
            assertEquals("tiny", f.getString("general.name"));
            assertEquals(10000f, f.getFloat("llama.rope.freq_base"));
        }
    }

    /** The two files of an emscripten package are ranges of one .data file. */
    @Test
    void shouldConvertFromByteRangesOfOnePackedFile() throws IOException {
        Llama2cCheckpoint checkpoint = Llama2cCheckpoint.random(TINY, 5);
        byte[] model = checkpoint.modelBytes();
        byte[] tokenizer = TinyVocabulary.tokenizerBytes(true);
        byte[] packed = new byte[model.length + tokenizer.length];
        System.arraycopy(model, 0, packed, 0, model.length);
        System.arraycopy(tokenizer, 0, packed, model.length, tokenizer.length);
        Path data = Files.write(dir.resolve("llama2.data"), packed);
        String js = "var x=1;function loadPackage(metadata){return metadata}loadPackage({\"files\": [{\"filename\": \"/model.bin\", \"start\": 0, \"end\": "
                + model.length + "}, {\"filename\": \"/tokenizer.bin\", \"start\": " + model.length + ", \"end\": " + packed.length
                + "}], \"remote_package_size\": " + packed.length + "});var y=2;";
        EmscriptenFileTable table = EmscriptenFileTable.read(Files.writeString(dir.resolve("llama2.js"), js));

        Path fromPackage = dir.resolve("packed.gguf");
        Llama2cConverter.convert(table.slice(data, "/model.bin"), table.slice(data, "/tokenizer.bin"), "tiny", fromPackage);
        Path fromFiles = convert(checkpoint, tokenizer);
        assertArrayEquals(Files.readAllBytes(fromFiles), Files.readAllBytes(fromPackage));
    }

    // ---- (c) hostile and broken inputs -------------------------------------------------------

    @Test
    void shouldNameTheProblemWhenTheHeaderIsBad() throws IOException {
        assertModelFails(b -> b.putInt(0, 0), "dim must be positive");
        assertModelFails(b -> b.putInt(4, -5), "hidden_dim must be positive");
        assertModelFails(b -> b.putInt(8, 0), "n_layers must be positive");
        assertModelFails(b -> b.putInt(16, 3), "n_heads 4 is not a multiple of n_kv_heads 3");
        assertModelFails(b -> b.putInt(12, 5), "dim 32 is not a multiple of n_heads 5");
        assertModelFails(b -> b.putInt(12, 8).putInt(16, 8).putInt(0, 24), "head size 3 is odd");
        assertModelFails(b -> b.putInt(20, 0), "vocab_size must not be 0");
        assertModelFails(b -> b.putInt(20, Integer.MIN_VALUE), "vocab_size must not be 0");
        assertModelFails(b -> b.putInt(20, 2), "leaves no room for <unk>, <s> and </s>");
        assertModelFails(b -> b.putInt(24, -1), "seq_len must be positive");
        assertModelFails(b -> b.putInt(0, 0x616b3432).putInt(4, 1), "llama2.c version 1 export");
        // Plausible fields that do not add up to the file: a wrong layer count, the sign of
        // vocab_size flipped (a wcls that is not there), huge values that overflow.
        assertModelFails(b -> b.putInt(8, 3), "means a checkpoint of", "truncated?");
        assertModelFails(b -> b.putInt(8, 1), "trailing data");
        assertModelFails(b -> b.putInt(20, -b.getInt(20)), "(own classifier)", "truncated?");
        assertModelFails(b -> b.putInt(0, 1 << 30).putInt(4, 1 << 30).putInt(12, 1 << 28).putInt(16, 1 << 28), "overflows 64 bits");
    }

    @Test
    void shouldNameTheProblemWhenTheCheckpointIsCut() throws IOException {
        byte[] model = Llama2cCheckpoint.random(TINY, 6).modelBytes();
        for (int length : new int[] {0, 12, 27, 28, model.length - 1}) {
            Path file = Files.write(dir.resolve("cut-" + length + ".bin"), Arrays.copyOf(model, length));
            Llama2cFormatException e = convertFails(file, tokenizerFile(TinyVocabulary.tokenizerBytes(true)));
            assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
            assertTrue(e.getMessage().contains(length < 28 ? "too short for a llama2.c checkpoint" : "truncated?"), e.getMessage());
        }
        Path longer = Files.write(dir.resolve("longer.bin"), Arrays.copyOf(model, model.length + 4));
        assertTrue(convertFails(longer, tokenizerFile(TinyVocabulary.tokenizerBytes(true))).getMessage().contains("trailing data"));
    }

    @Test
    void shouldNameTheProblemWhenTheTokenizerIsBad() throws IOException {
        byte[] good = TinyVocabulary.tokenizerBytes(true);
        assertTokenizerFails(Arrays.copyOf(good, 2), "truncated: max_token_length needs 4 bytes");
        assertTokenizerFails(Arrays.copyOf(good, good.length - 1), "truncated: piece of token " + (TINY.vocabSize() - 1));
        assertTokenizerFails(Arrays.copyOf(good, good.length + 3), "3 bytes follow the " + TINY.vocabSize() + " tokens");
        assertTokenizerFails(patch(good, b -> b.putInt(0, -1)), "max_token_length is -1");
        assertTokenizerFails(patch(good, b -> b.putInt(0, 2)), "token 0 is 5 bytes long, outside [0, max_token_length 2]");
        // Token 0 ("<unk>") starts at 4: score at 4, length at 8, bytes at 12.
        assertTokenizerFails(patch(good, b -> b.putInt(8, -7)), "token 0 is -7 bytes long");
        assertTokenizerFails(patch(good, b -> b.putFloat(4, Float.NaN)), "token 0 has score NaN");
        assertTokenizerFails(patch(good, b -> b.put(12, (byte) 0xC3).put(13, (byte) 0x28)), "token 0 is not valid UTF-8 (c3 28");
        // The tokenizer of a larger vocabulary.
        assertTokenizerFails(TinyVocabulary.tokenizerBytes(true, 5), "bytes follow the " + TINY.vocabSize() + " tokens");
    }

    @Test
    void shouldLeaveNoFileAndKeepTheOldOneWhenConversionFails() throws IOException {
        Path out = Files.writeString(dir.resolve("out.gguf"), "the previous file");
        Path model = Files.write(dir.resolve("m.bin"), Arrays.copyOf(Llama2cCheckpoint.random(TINY, 7).modelBytes(), 100));
        assertThrows(Llama2cFormatException.class,
                () -> Llama2cConverter.convert(FileSlice.whole(model), FileSlice.whole(tokenizerFile(TinyVocabulary.tokenizerBytes(true))), "x", out));
        assertEquals("the previous file", Files.readString(out));
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(List.of(), files.filter(p -> p.getFileName().toString().endsWith(".part")).toList());
        }
    }

    @Test
    void shouldNameTheFileWhenAnInputIsMissingOrARangeLiesOutsideIt() throws IOException {
        Path tokenizer = tokenizerFile(TinyVocabulary.tokenizerBytes(true));
        Path missing = dir.resolve("nope.bin");
        Llama2cFormatException e = convertFails(missing, tokenizer);
        assertTrue(e.getMessage().contains(missing + ": no such file"), e.getMessage());
        Path model = Llama2cCheckpoint.random(TINY, 8).writeModel(dir.resolve("model.bin"));
        e = assertThrows(Llama2cFormatException.class, () -> Llama2cConverter.convert(FileSlice.whole(model),
                new FileSlice(tokenizer, 10, Files.size(tokenizer)), "x", dir.resolve("x.gguf")));
        assertTrue(e.getMessage().contains("lies outside the file"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new FileSlice(model, -1, 3));
    }

    // ---- helpers ------------------------------------------------------------------------------

    private Path convert(Llama2cCheckpoint checkpoint, byte[] tokenizer) throws IOException {
        Path model = checkpoint.writeModel(Files.createTempFile(dir, "model", ".bin"));
        Path out = dir.resolve("tiny-" + System.nanoTime() + ".gguf");
        Llama2cConverter.convert(FileSlice.whole(model), FileSlice.whole(tokenizerFile(tokenizer)), "tiny", out);
        return out;
    }

    private Path tokenizerFile(byte[] bytes) throws IOException {
        return Files.write(Files.createTempFile(dir, "tokenizer", ".bin"), bytes);
    }

    private Llama2cFormatException convertFails(Path model, Path tokenizer) {
        return assertThrows(Llama2cFormatException.class,
                () -> Llama2cConverter.convert(FileSlice.whole(model), FileSlice.whole(tokenizer), "x", dir.resolve("never.gguf")));
    }

    private void assertModelFails(Consumer<ByteBuffer> patch, String... fragments) throws IOException {
        byte[] bytes = patch(Llama2cCheckpoint.random(TINY, 9).modelBytes(), patch);
        Path model = Files.write(Files.createTempFile(dir, "bad", ".bin"), bytes);
        Llama2cFormatException e = convertFails(model, tokenizerFile(TinyVocabulary.tokenizerBytes(true)));
        assertTrue(e.getMessage().startsWith(model.toString()), e.getMessage());
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), "message lacks '" + f + "': " + e.getMessage());
        }
        assertFalse(Files.exists(dir.resolve("never.gguf")));
    }

    private void assertTokenizerFails(byte[] tokenizer, String fragment) throws IOException {
        Path model = Llama2cCheckpoint.random(TINY, 10).writeModel(Files.createTempFile(dir, "model", ".bin"));
        Path file = tokenizerFile(tokenizer);
        Llama2cFormatException e = convertFails(model, file);
        assertTrue(e.getMessage().startsWith(file + " bytes ["), e.getMessage());
        assertTrue(e.getMessage().contains(fragment), "message lacks '" + fragment + "': " + e.getMessage());
    }

    private static byte[] patch(byte[] bytes, Consumer<ByteBuffer> patch) {
        byte[] copy = bytes.clone();
        patch.accept(ByteBuffer.wrap(copy).order(ByteOrder.LITTLE_ENDIAN));
        return copy;
    }

    /** Teacher-forced logits of every position of {@code tokens}, row after row. */
    static float[] allLogits(GgufFile f, int[] tokens) {
        try (ComputePool pool = new ComputePool(1); LlamaModel model = LlamaModel.load(f)) {
            ModelConfig c = model.config();
            float[] logits = new float[tokens.length * c.vocabularySize()];
            KvGeometry geometry = new KvGeometry(c.layers(), c.kvHeads(), c.headDim(), KvGeometry.DEFAULT_CHUNK_TOKENS, KvFormat.F32);
            try (SlabKvStore store = new SlabKvStore(geometry, Long.MAX_VALUE); KvCache cache = new KvCache(store)) {
                new ForwardPass(model, pool, 16).forward(cache, tokens, 0, tokens.length, 0, logits);
            }
            return logits;
        }
    }

    /** A SentencePiece-style vocabulary for the synthetic checkpoints: three specials, 256 byte pieces, a few words. */
    static final class TinyVocabulary {
        // Every piece longer than one character is the concatenation of two others, so the
        // SentencePiece merges can reach it; "" stands for an unused slot.
        static final List<String> WORDS = List.of("▁the", "▁cat", "▁sat", "▁a", "the", "th", "at", "cat", "sat", "", "▁", "e", "t", "▁▁");

        static int id(String piece) {
            int i = WORDS.indexOf(piece);
            if (i < 0) {
                throw new IllegalArgumentException(piece);
            }
            return 259 + i;
        }

        static String[] pieces(int extraWords) {
            List<String> p = new ArrayList<>(List.of("<unk>", "<s>", "</s>"));
            HexFormat hex = HexFormat.of().withUpperCase();
            for (int b = 0; b < 256; b++) {
                p.add("<0x" + hex.toHexDigits((byte) b) + ">");
            }
            p.addAll(WORDS);
            for (int i = 0; i < extraWords; i++) {
                p.add("▁extra" + i);
            }
            return p.toArray(String[]::new);
        }

        static byte[] tokenizerBytes(boolean charBytePieces) {
            return tokenizerBytes(charBytePieces, 0);
        }

        static byte[] tokenizerBytes(boolean charBytePieces, int extraWords) {
            String[] pieces = pieces(extraWords);
            float[] scores = new float[pieces.length];
            for (int i = 259; i < pieces.length; i++) {
                scores[i] = -(i - 258) - (pieces[i].length() > 1 ? 0 : 50);
            }
            return Llama2cCheckpoint.tokenizerBytes(pieces, scores, charBytePieces);
        }
    }

    @Test
    void shouldRefuseHeaderValuesInCodeAsInFiles() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new Llama2cHeader(32, 72, 2, 4, 3, 300, true, 64));
        assertTrue(e.getMessage().contains("n_heads 4 is not a multiple of n_kv_heads 3"), e.getMessage());
    }
}
