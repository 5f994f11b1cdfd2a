package io.kvstash.engine.convert;

import io.kvstash.engine.gguf.GgmlType;
import io.kvstash.engine.gguf.GgufFileWriter;
import io.kvstash.engine.gguf.GgufFileWriter.TensorData;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Converts a llama2.c checkpoint ({@code model.bin}, the format {@code run.c} reads) and its
 * {@code tokenizer.bin} to a GGUF file of architecture {@code llama} with F32 weights, so the
 * engine computes with exactly the checkpoint's values.
 *
 * <p>Tensors are named and shaped as llama.cpp's {@code convert-llama2c-to-ggml} names them. The
 * Q and K projections are copied as they are: llama2.c rotates interleaved pairs, which is
 * llama.cpp's normal rope, so the permutation applied to Hugging Face checkpoints does not apply.
 * The rope tables the checkpoint stores ({@code freq_cis_real/imag}) are skipped; they are the
 * standard base-10000 frequencies, which the engine computes itself. When the checkpoint shares
 * its classifier with the embedding, the file has no {@code output.weight} and the engine ties
 * them too.
 *
 * <p>Weights are copied from the checkpoint file to the output file by the channels, never held
 * in memory; the output appears complete or not at all (temporary file and atomic move).
 */
public final class Llama2cConverter {
    /** llama2.c's RMSNorm epsilon (run.c adds 1e-5f). */
    public static final float RMS_EPSILON = 1e-5f;
    /** llama2.c's rope base (run.c: {@code powf(10000.0f, head_dim / (float) head_size)}). */
    public static final float ROPE_BASE = 10000f;
    /** GGUF {@code general.file_type} of a file whose tensors are all F32 (llama.cpp's LLAMA_FTYPE_ALL_F32). */
    private static final int FILE_TYPE_ALL_F32 = 0;

    /** What was converted: the checkpoint's header and the size of the GGUF file written. */
    public record Result(Llama2cHeader header, long fileBytes) {}

    private Llama2cConverter() {
    }

    /**
     * Converts {@code checkpoint} and {@code tokenizer} (whole files or ranges of one packed file)
     * to {@code out}, replacing it. {@code name} becomes {@code general.name}.
     *
     * @throws Llama2cFormatException if an input is not what it should be; the message names it and the problem
     */
    public static Result convert(FileSlice checkpoint, FileSlice tokenizer, String name, Path out) throws IOException {
        if (name == null || name.isBlank()) {
            throw new IllegalArgumentException("the model name must not be blank");
        }
        checkpoint.requireWithinFile();
        tokenizer.requireWithinFile();
        try (FileChannel model = FileChannel.open(checkpoint.file(), StandardOpenOption.READ);
             FileChannel vocabFile = FileChannel.open(tokenizer.file(), StandardOpenOption.READ);
             Arena arena = Arena.ofConfined()) {
            ByteBuffer headerBytes = ByteBuffer.allocate((int) Math.min(Llama2cHeader.BYTES, checkpoint.length()));
            readFully(model, headerBytes, checkpoint);
            Llama2cHeader h = Llama2cHeader.read(headerBytes.flip(), checkpoint);
            MemorySegment vocabBytes = tokenizer.length() == 0
                    ? MemorySegment.NULL.reinterpret(0)
                    : vocabFile.map(FileChannel.MapMode.READ_ONLY, tokenizer.offset(), tokenizer.length(), arena);
            Llama2cVocabulary vocab = Llama2cVocabulary.read(vocabBytes, h.vocabSize(), tokenizer);

            GgufFileWriter gguf = new GgufFileWriter();
            metadata(gguf, h, vocab, name);
            tensors(gguf, h, model, checkpoint.offset() + Llama2cHeader.BYTES);
            return new Result(h, gguf.write(out));
        }
    }

    private static void metadata(GgufFileWriter gguf, Llama2cHeader h, Llama2cVocabulary vocab, String name) {
        gguf.putString("general.architecture", "llama")
                .putString("general.name", name)
                .putUint32("general.file_type", FILE_TYPE_ALL_F32)
                .putUint32("llama.context_length", h.seqLen())
                .putUint32("llama.embedding_length", h.dim())
                .putUint32("llama.feed_forward_length", h.hiddenDim())
                .putUint32("llama.block_count", h.layers())
                .putUint32("llama.attention.head_count", h.heads())
                .putUint32("llama.attention.head_count_kv", h.kvHeads())
                .putUint32("llama.rope.dimension_count", h.headSize())
                .putFloat32("llama.rope.freq_base", ROPE_BASE)
                .putFloat32("llama.attention.layer_norm_rms_epsilon", RMS_EPSILON)
                .putString("tokenizer.ggml.model", "llama")
                .putStringArray("tokenizer.ggml.tokens", vocab.pieces())
                .putFloat32Array("tokenizer.ggml.scores", vocab.scores())
                .putInt32Array("tokenizer.ggml.token_type", vocab.types())
                .putUint32("tokenizer.ggml.unknown_token_id", Llama2cVocabulary.UNKNOWN_ID)
                .putUint32("tokenizer.ggml.bos_token_id", Llama2cVocabulary.BOS_ID)
                .putUint32("tokenizer.ggml.eos_token_id", Llama2cVocabulary.EOS_ID);
    }

    /** Tensor names per layer, in the order llama.cpp's converters write them. */
    private static final String[] LAYER_TENSORS = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
            "ffn_norm", "ffn_gate", "ffn_down", "ffn_up"};

    private record Range(long[] dims, long position, long bytes) {}

    /**
     * Declares every tensor over its range of the checkpoint. The ranges are found by walking the
     * file in llama2.c's order (each kind of weight for all layers at once); the tensors are then
     * listed layer by layer, as llama.cpp lists them. GGML shapes are innermost first, so
     * llama2.c's {@code wq[layer][dim][dim]} (rows are outputs) is {@code [dim, dim]} and
     * {@code w2[layer][dim][hidden]} is {@code [hidden, dim]}.
     */
    private static void tensors(GgufFileWriter gguf, Llama2cHeader h, FileChannel model, long weightsStart) {
        long dim = h.dim();
        long kvDim = h.kvDim();
        long hidden = h.hiddenDim();
        long vocabSize = h.vocabSize();
        int layers = h.layers();
        Map<String, Range> ranges = new HashMap<>();
        var at = new Object() {
            long position = weightsStart;

            /** The next {@code rows × cols} floats of the file, as tensor {@code [cols, rows]}. */
            void matrix(String name, long rows, long cols) {
                add(name, new long[] {cols, rows}, rows * cols);
            }

            /** The next {@code n} floats of the file, as tensor {@code [n]}. */
            void vector(String name, long n) {
                add(name, new long[] {n}, n);
            }

            private void add(String name, long[] dims, long floats) {
                ranges.put(name, new Range(dims, position, floats * Float.BYTES));
                skip(floats);
            }

            void skip(long floats) {
                position += floats * Float.BYTES;
            }
        };
        at.matrix("token_embd.weight", vocabSize, dim);
        for (int l = 0; l < layers; l++) at.vector("blk." + l + ".attn_norm.weight", dim);
        for (int l = 0; l < layers; l++) at.matrix("blk." + l + ".attn_q.weight", dim, dim);
        for (int l = 0; l < layers; l++) at.matrix("blk." + l + ".attn_k.weight", kvDim, dim);
        for (int l = 0; l < layers; l++) at.matrix("blk." + l + ".attn_v.weight", kvDim, dim);
        for (int l = 0; l < layers; l++) at.matrix("blk." + l + ".attn_output.weight", dim, dim);
        for (int l = 0; l < layers; l++) at.vector("blk." + l + ".ffn_norm.weight", dim);
        for (int l = 0; l < layers; l++) at.matrix("blk." + l + ".ffn_gate.weight", hidden, dim); // w1
        for (int l = 0; l < layers; l++) at.matrix("blk." + l + ".ffn_down.weight", dim, hidden); // w2
        for (int l = 0; l < layers; l++) at.matrix("blk." + l + ".ffn_up.weight", hidden, dim); // w3
        at.vector("output_norm.weight", dim);
        at.skip((long) h.seqLen() * h.headSize()); // freq_cis_real and freq_cis_imag
        if (!h.sharedClassifier()) {
            at.matrix("output.weight", vocabSize, dim); // wcls
        }

        List<String> order = new ArrayList<>(List.of("token_embd.weight", "output_norm.weight"));
        if (!h.sharedClassifier()) {
            order.add("output.weight");
        }
        for (int l = 0; l < layers; l++) {
            for (String t : LAYER_TENSORS) {
                order.add("blk." + l + "." + t + ".weight");
            }
        }
        for (String name : order) {
            Range r = ranges.get(name);
            gguf.addTensor(name, GgmlType.F32, r.dims(), TensorData.fileRange(model, r.position(), r.bytes()));
        }
    }

    private static void readFully(FileChannel ch, ByteBuffer b, FileSlice slice) throws IOException {
        while (b.hasRemaining()) {
            if (ch.read(b, slice.offset() + b.position()) < 0) {
                throw new IOException(slice.file() + ": ended at " + (slice.offset() + b.position()) + " while it was read");
            }
        }
    }
}
