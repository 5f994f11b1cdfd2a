package io.kvstash.engine.convert;

import io.kvstash.engine.gguf.GgmlType;
import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.gguf.GgufTensor;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

/**
 * A llama2.c checkpoint in memory, in the layout of {@code run.c}'s {@code TransformerWeights}
 * (each kind of weight for all layers in one array), written the way llama2.c's legacy export
 * writes it. Built from random numbers or from the F32 tensors of a GGUF file, so tests can
 * produce {@code model.bin} and {@code tokenizer.bin} files without downloading any.
 */
public record Llama2cCheckpoint(Llama2cHeader header, float[] tokenEmbedding, float[] rmsAtt, float[] wq, float[] wk, float[] wv,
                         float[] wo, float[] rmsFfn, float[] w1, float[] w2, float[] w3, float[] rmsFinal, float[] wcls) {

    /** The classifier: {@code wcls}, or the embedding when they are shared. */
    public float[] classifier() {
        return header.sharedClassifier() ? tokenEmbedding : wcls;
    }

    public static Llama2cCheckpoint random(Llama2cHeader h, long seed) {
        Random r = new Random(seed);
        int d = h.dim();
        int l = h.layers();
        float scale = (float) (1 / Math.sqrt(d));
        return new Llama2cCheckpoint(h,
                gaussian(r, h.vocabSize() * d, 1f),
                norms(r, l * d), gaussian(r, l * d * d, scale), gaussian(r, l * h.kvDim() * d, scale),
                gaussian(r, l * h.kvDim() * d, scale), gaussian(r, l * d * d, scale), norms(r, l * d),
                gaussian(r, l * h.hiddenDim() * d, scale), gaussian(r, l * d * h.hiddenDim(), (float) (1 / Math.sqrt(h.hiddenDim()))),
                gaussian(r, l * h.hiddenDim() * d, scale), norms(r, d),
                h.sharedClassifier() ? null : gaussian(r, h.vocabSize() * d, scale));
    }

    /** The F32 weights of a llama GGUF, as llama2.c holds them; {@code output.weight} becomes {@code wcls} when present. */
    public static Llama2cCheckpoint fromGguf(GgufFile f) {
        int d = f.getInt("llama.embedding_length");
        int layers = f.getInt("llama.block_count");
        int heads = f.getInt("llama.attention.head_count");
        GgufTensor embedding = f.requireTensor("token_embd.weight");
        boolean shared = f.tensor("output.weight") == null;
        Llama2cHeader h = new Llama2cHeader(d, f.getInt("llama.feed_forward_length"), layers, heads,
                f.getInt("llama.attention.head_count_kv"), (int) embedding.rowCount(), shared, f.getInt("llama.context_length"));
        return new Llama2cCheckpoint(h, floats(embedding),
                perLayer(f, layers, "attn_norm"), perLayer(f, layers, "attn_q"), perLayer(f, layers, "attn_k"),
                perLayer(f, layers, "attn_v"), perLayer(f, layers, "attn_output"), perLayer(f, layers, "ffn_norm"),
                perLayer(f, layers, "ffn_gate"), perLayer(f, layers, "ffn_down"), perLayer(f, layers, "ffn_up"),
                floats(f.requireTensor("output_norm.weight")), shared ? null : floats(f.requireTensor("output.weight")));
    }

    private static float[] perLayer(GgufFile f, int layers, String name) {
        float[][] parts = new float[layers][];
        int total = 0;
        for (int l = 0; l < layers; l++) {
            parts[l] = floats(f.requireTensor("blk." + l + "." + name + ".weight"));
            total += parts[l].length;
        }
        float[] all = new float[total];
        for (int l = 0, at = 0; l < layers; at += parts[l].length, l++) {
            System.arraycopy(parts[l], 0, all, at, parts[l].length);
        }
        return all;
    }

    private static float[] floats(GgufTensor t) {
        if (t.type() != GgmlType.F32) {
            throw new IllegalArgumentException(t.name() + " is " + t.type() + ", not F32");
        }
        return t.data().toArray(ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN));
    }

    /** The checkpoint file: header (vocab_size negative when the classifier is not shared), weights, rope tables, wcls. */
    public byte[] modelBytes() {
        Llama2cHeader h = header;
        ByteBuffer b = ByteBuffer.allocate(Math.toIntExact(h.checkpointBytes())).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(h.dim()).putInt(h.hiddenDim()).putInt(h.layers()).putInt(h.heads()).putInt(h.kvHeads())
                .putInt(h.sharedClassifier() ? h.vocabSize() : -h.vocabSize()).putInt(h.seqLen());
        for (float[] a : new float[][] {tokenEmbedding, rmsAtt, wq, wk, wv, wo, rmsFfn, w1, w2, w3, rmsFinal}) {
            put(b, a);
        }
        // freq_cis_real then freq_cis_imag, as llama2.c's legacy export precomputed them.
        int half = h.headSize() / 2;
        for (int part = 0; part < 2; part++) {
            for (int pos = 0; pos < h.seqLen(); pos++) {
                for (int i = 0; i < half; i++) {
                    double angle = pos / Math.pow(10000, 2.0 * i / h.headSize());
                    b.putFloat((float) (part == 0 ? Math.cos(angle) : Math.sin(angle)));
                }
            }
        }
        if (!h.sharedClassifier()) {
            put(b, wcls);
        }
        if (b.hasRemaining()) {
            throw new IllegalStateException(b.remaining() + " bytes of the checkpoint left unwritten");
        }
        return b.array();
    }

    public Path writeModel(Path file) throws IOException {
        return Files.write(file, modelBytes());
    }

    private static void put(ByteBuffer b, float[] a) {
        for (float v : a) {
            b.putFloat(v);
        }
    }

    /**
     * A {@code tokenizer.bin} for the GGUF vocabulary {@code pieces} as llama2.c's exporter writes
     * it: "▁" as a space, BOS and EOS as {@code "\n<s>\n"} and {@code "\n</s>\n"}, and with
     * {@code charBytePieces} (its first version) the pieces {@code <0xNN>} as the character U+00NN.
     */
    public static byte[] tokenizerBytes(String[] pieces, float[] scores, boolean charBytePieces) {
        byte[][] encoded = new byte[pieces.length][];
        int max = 0;
        for (int id = 0; id < pieces.length; id++) {
            String p = pieces[id];
            if (id == 1) {
                p = "\n<s>\n";
            } else if (id == 2) {
                p = "\n</s>\n";
            } else if (charBytePieces && p.matches("<0x[0-9A-F]{2}>")) {
                p = String.valueOf((char) Integer.parseInt(p.substring(3, 5), 16));
            }
            encoded[id] = p.replace('\u2581', ' ').getBytes(StandardCharsets.UTF_8);
            max = Math.max(max, encoded[id].length);
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(le(max));
        for (int id = 0; id < pieces.length; id++) {
            out.writeBytes(le(Float.floatToRawIntBits(scores[id])));
            out.writeBytes(le(encoded[id].length));
            out.writeBytes(encoded[id]);
        }
        return out.toByteArray();
    }

    static byte[] le(int v) {
        return ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(v).array();
    }

    private static float[] gaussian(Random r, int n, float scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) r.nextGaussian() * scale;
        }
        return a;
    }

    private static float[] norms(Random r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = 1f + 0.2f * (float) r.nextGaussian();
        }
        return a;
    }
}
