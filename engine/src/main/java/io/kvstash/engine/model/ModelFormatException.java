package io.kvstash.engine.model;

/** A GGUF file that reads fine but does not describe a model the engine can run. */
public final class ModelFormatException extends RuntimeException {
    public ModelFormatException(String message) {
        super(message);
    }
}
