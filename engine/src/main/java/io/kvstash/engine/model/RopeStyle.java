package io.kvstash.engine.model;

/** How rotary embeddings pair up the dimensions of a head. */
public enum RopeStyle {
    /** GGML "normal": rotate adjacent pairs {@code (x[2i], x[2i+1])} (Llama, as converted by llama.cpp). */
    NORMAL,
    /** GPT-NeoX: rotate {@code (x[i], x[i + d/2])} (Qwen2 and others). */
    NEOX
}
