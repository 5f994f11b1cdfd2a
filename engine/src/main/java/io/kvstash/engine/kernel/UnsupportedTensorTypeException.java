package io.kvstash.engine.kernel;

import io.kvstash.engine.gguf.GgmlType;

/** A tensor in a format the engine has no kernel for. */
public final class UnsupportedTensorTypeException extends IllegalArgumentException {
    public UnsupportedTensorTypeException(String tensor, GgmlType type) {
        super("tensor '" + tensor + "' has type " + type + ", which kvstash cannot compute with (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)");
    }

    UnsupportedTensorTypeException(String message) {
        super(message);
    }
}
