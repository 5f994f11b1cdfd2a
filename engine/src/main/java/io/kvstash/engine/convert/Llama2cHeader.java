package io.kvstash.engine.convert;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The header of a llama2.c checkpoint in the format {@code run.c} reads (llama2.c's "legacy"
 * export): seven little-endian int32, then float32 weights. A negative {@code vocab_size} in the
 * file means the classifier is not shared with the token embedding and follows the weights.
 *
 * @param sharedClassifier whether the token embedding doubles as the output matrix
 * @param seqLen           the context length the model was trained for
 */
public record Llama2cHeader(int dim, int hiddenDim, int layers, int heads, int kvHeads, int vocabSize,
                            boolean sharedClassifier, int seqLen) {
    /** Bytes of the header: seven int32. */
    public static final int BYTES = 7 * Integer.BYTES;
    /** First int32 of llama2.c's later export formats (version 1 and 2), "ak42" little-endian. */
    private static final int VERSIONED_EXPORT_MAGIC = 0x616b3432;

    public Llama2cHeader {
        // Repeated here so a header built in code is held to the same rules as one read from a file.
        String problem = problem(dim, hiddenDim, layers, heads, kvHeads, vocabSize, seqLen);
        if (problem != null) {
            throw new IllegalArgumentException(problem);
        }
    }

    /** Reads and checks the header of {@code checkpoint}, whose length must be exactly what the header implies. */
    static Llama2cHeader read(ByteBuffer bytes, FileSlice checkpoint) {
        if (checkpoint.length() < BYTES) {
            throw new Llama2cFormatException(checkpoint + ": " + checkpoint.length()
                    + " bytes, too short for a llama2.c checkpoint (its header alone is " + BYTES + " bytes)");
        }
        ByteBuffer b = bytes.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        int first = b.getInt(0);
        if (first == VERSIONED_EXPORT_MAGIC) {
            throw new Llama2cFormatException(checkpoint + ": a llama2.c version " + b.getInt(4) + " export (magic \"ak42\");"
                    + " only the format run.c reads is supported (export.py --version 0)");
        }
        int dim = first;
        int hidden = b.getInt(4);
        int layers = b.getInt(8);
        int heads = b.getInt(12);
        int kvHeads = b.getInt(16);
        int signedVocab = b.getInt(20);
        int seqLen = b.getInt(24);
        int vocab = signedVocab == Integer.MIN_VALUE ? 0 : Math.abs(signedVocab);
        String problem = problem(dim, hidden, layers, heads, kvHeads, vocab, seqLen);
        if (problem != null) {
            throw new Llama2cFormatException(checkpoint + ": bad llama2.c header (dim " + dim + ", hidden_dim " + hidden
                    + ", n_layers " + layers + ", n_heads " + heads + ", n_kv_heads " + kvHeads + ", vocab_size " + signedVocab
                    + ", seq_len " + seqLen + "): " + problem);
        }
        Llama2cHeader header = new Llama2cHeader(dim, hidden, layers, heads, kvHeads, vocab, signedVocab > 0, seqLen);
        long expected = header.checkpointBytes();
        if (expected == Long.MAX_VALUE) {
            throw new Llama2cFormatException(checkpoint + ": the header (" + header.describe()
                    + ") describes a model whose size overflows 64 bits: not a llama2.c checkpoint");
        }
        if (checkpoint.length() != expected) {
            throw new Llama2cFormatException(checkpoint + ": the header (" + header.describe() + ") means a checkpoint of "
                    + expected + " bytes, but it has " + checkpoint.length()
                    + (checkpoint.length() < expected ? " (truncated?)" : " (trailing data, or not a llama2.c checkpoint)"));
        }
        return header;
    }

    private static String problem(int dim, int hidden, int layers, int heads, int kvHeads, int vocab, int seqLen) {
        if (dim <= 0) return "dim must be positive";
        if (hidden <= 0) return "hidden_dim must be positive";
        if (layers <= 0) return "n_layers must be positive";
        if (heads <= 0) return "n_heads must be positive";
        if (kvHeads <= 0) return "n_kv_heads must be positive";
        if (vocab <= 0) return "vocab_size must not be 0";
        if (vocab < 3) return "vocab_size " + vocab + " leaves no room for <unk>, <s> and </s>, which llama2.c gives ids 0, 1 and 2";
        if (seqLen <= 0) return "seq_len must be positive";
        if (dim % heads != 0) return "dim " + dim + " is not a multiple of n_heads " + heads;
        if (heads % kvHeads != 0) return "n_heads " + heads + " is not a multiple of n_kv_heads " + kvHeads;
        if (dim / heads % 2 != 0) return "the head size " + dim / heads + " is odd, rotary embedding needs pairs";
        return null;
    }

    public int headSize() {
        return dim / heads;
    }

    public int kvDim() {
        return kvHeads * headSize();
    }

    /** Float32 values of the checkpoint, in file order (the rope tables llama2.c stores included); overflow throws. */
    long floatCount() {
        long d = dim;
        long perLayer = sum(2 * d, // rms_att_weight, rms_ffn_weight
                Math.multiplyExact(2 * d, d), // wq, wo
                Math.multiplyExact(2L * kvDim(), d), // wk, wv
                Math.multiplyExact(3 * d, (long) hiddenDim)); // w1, w2, w3
        return sum(Math.multiplyExact((long) vocabSize, d), // token_embedding_table
                Math.multiplyExact((long) layers, perLayer),
                d, // rms_final_weight
                (long) seqLen * headSize(), // freq_cis_real and freq_cis_imag, seq_len × head_size/2 each
                sharedClassifier ? 0 : Math.multiplyExact((long) vocabSize, d)); // wcls
    }

    private static long sum(long... terms) {
        long s = 0;
        for (long t : terms) {
            s = Math.addExact(s, t);
        }
        return s;
    }

    /** Bytes of the whole checkpoint this header describes, or {@code Long.MAX_VALUE} if that overflows. */
    public long checkpointBytes() {
        try {
            return Math.addExact(BYTES, Math.multiplyExact(floatCount(), (long) Float.BYTES));
        } catch (ArithmeticException e) {
            return Long.MAX_VALUE;
        }
    }

    public String describe() {
        return "dim " + dim + ", hidden_dim " + hiddenDim + ", n_layers " + layers + ", n_heads " + heads + ", n_kv_heads " + kvHeads
                + ", vocab_size " + vocabSize + (sharedClassifier ? " (shared classifier)" : " (own classifier)") + ", seq_len " + seqLen;
    }
}
