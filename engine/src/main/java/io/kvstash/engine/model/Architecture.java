package io.kvstash.engine.model;

import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * The decoder-only transformer families the engine runs, named as GGUF's
 * {@code general.architecture} names them, and what sets one apart from another. Everything else
 * (RMSNorm, grouped-query attention, SwiGLU, tied or untied output) is shared and lives in
 * {@link ForwardPass} once.
 *
 * <p>Optional tensors are applied whenever a file holds them, as llama.cpp does for Llama
 * ({@code blk.N.attn_{q,k,v,output}.bias}, {@code output.bias}, {@code rope_freqs.weight}). For
 * qwen2 llama.cpp knows only {@code output.bias} among these and would refuse a file with the
 * others; the engine applies them alike rather than keep a second forward pass.
 */
public enum Architecture {
    /** Llama 1–3 and models converted to its layout: rotate adjacent pairs; attention biases optional. */
    LLAMA("llama", RopeStyle.NORMAL, false),
    /** Qwen2 and Qwen2.5: NeoX rotation; the Q, K and V projections always carry biases. */
    QWEN2("qwen2", RopeStyle.NEOX, true);

    private final String ggufName;
    private final RopeStyle ropeStyle;
    private final boolean qkvBiasRequired;

    Architecture(String ggufName, RopeStyle ropeStyle, boolean qkvBiasRequired) {
        this.ggufName = ggufName;
        this.ropeStyle = ropeStyle;
        this.qkvBiasRequired = qkvBiasRequired;
    }

    /** The value of {@code general.architecture}, which is also the prefix of the family's metadata keys. */
    public String ggufName() {
        return ggufName;
    }

    public RopeStyle ropeStyle() {
        return ropeStyle;
    }

    /** Whether {@code blk.N.attn_q.bias}, {@code attn_k.bias} and {@code attn_v.bias} must be present. */
    public boolean qkvBiasRequired() {
        return qkvBiasRequired;
    }

    /** The GGUF names of every supported architecture, in declaration order. */
    public static List<String> supportedNames() {
        return Arrays.stream(values()).map(Architecture::ggufName).toList();
    }

    /** The architecture that GGUF calls {@code name}, if the engine runs it. */
    public static Optional<Architecture> fromGguf(String name) {
        return Arrays.stream(values()).filter(a -> a.ggufName.equals(name)).findFirst();
    }
}
