package io.kvstash.engine.convert;

/** A llama2.c checkpoint, tokenizer or emscripten package that cannot be converted: the message names the input and the problem. */
public final class Llama2cFormatException extends RuntimeException {
    public Llama2cFormatException(String message) {
        super(message);
    }
}
