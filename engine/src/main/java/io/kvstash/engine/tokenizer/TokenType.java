package io.kvstash.engine.tokenizer;

/** The kind of a vocabulary entry, from {@code tokenizer.ggml.token_type} (llama.cpp's {@code llama_token_type}). */
enum TokenType {
    UNDEFINED,
    NORMAL,
    UNKNOWN,
    CONTROL,
    USER_DEFINED,
    UNUSED,
    BYTE;

    static TokenType fromGgufCode(int code) {
        return switch (code) {
            case 1 -> NORMAL;
            case 2 -> UNKNOWN;
            case 3 -> CONTROL;
            case 4 -> USER_DEFINED;
            case 5 -> UNUSED;
            case 6 -> BYTE;
            // llama.cpp maps every other value to "undefined" too rather than rejecting the file.
            default -> UNDEFINED;
        };
    }
}
