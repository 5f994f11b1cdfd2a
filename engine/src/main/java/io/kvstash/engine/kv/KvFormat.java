package io.kvstash.engine.kv;

import java.util.Arrays;
import java.util.stream.Collectors;

/**
 * How a sealed (full) chunk stores its keys and values. The open tail chunk of a sequence is always
 * {@link #F32}: it is KIVI's full-precision residual window, and is encoded into the engine's format
 * in one go when it fills. {@link ChunkLayout} documents each format's bytes.
 */
public enum KvFormat {
    /** 32-bit floats. */
    F32(0),
    /** IEEE half floats. */
    F16(0),
    /** Symmetric 8-bit codes, one float scale per (token, group of {@link #GROUP} channels). */
    Q8(8),
    /**
     * KIVI, 4-bit: asymmetric codes; keys per channel over groups of {@link #GROUP} tokens, values per
     * token over groups of {@link #GROUP} channels; half-float min and scale per group.
     */
    KIVI4(4),
    /** KIVI, 2-bit, grouped as {@link #KIVI4}. */
    KIVI2(2);

    /** Quantization group: tokens per key group and channels per value (and Q8) group. */
    public static final int GROUP = 32;

    /** Bits per quantized code; 0 for the float formats. */
    public final int codeBits;

    KvFormat(int codeBits) {
        this.codeBits = codeBits;
    }

    public boolean isKivi() {
        return this == KIVI4 || this == KIVI2;
    }

    public static KvFormat parse(String name) {
        for (KvFormat f : values()) {
            if (f.name().equalsIgnoreCase(name)) {
                return f;
            }
        }
        throw new IllegalArgumentException("unknown KV format '" + name + "' (supported: "
                + Arrays.stream(values()).map(Enum::name).collect(Collectors.joining(", ")) + ")");
    }
}
