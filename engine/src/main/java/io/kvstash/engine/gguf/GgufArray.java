package io.kvstash.engine.gguf;

import java.lang.reflect.Array;

/**
 * A metadata array. {@code values} is a primitive array matching the element type
 * ({@code byte[]} for (U)INT8 and BOOL, {@code short[]} for (U)INT16, {@code int[]} for (U)INT32,
 * {@code long[]} for (U)INT64, {@code float[]}, {@code double[]}, {@code String[]}, or
 * {@code GgufArray[]} for nested arrays). Unsigned values keep their bits.
 */
public record GgufArray(GgufValueType elementType, Object values) {
    public int length() {
        return Array.getLength(values);
    }

    @Override
    public String toString() {
        return elementType + "[" + length() + "]";
    }
}
