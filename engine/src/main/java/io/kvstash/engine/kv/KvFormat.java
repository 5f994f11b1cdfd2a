package io.kvstash.engine.kv;

/**
 * How a chunk stores its keys and values. Quantized formats (Q8, KIVI) join this list with their
 * own kernels; the chunk layout leaves room for per-group scales.
 */
public enum KvFormat {
    F32(4),
    F16(2);

    /** Bytes per stored element. */
    public final int bytesPerElement;

    KvFormat(int bytesPerElement) {
        this.bytesPerElement = bytesPerElement;
    }

    public static KvFormat parse(String name) {
        for (KvFormat f : values()) {
            if (f.name().equalsIgnoreCase(name)) {
                return f;
            }
        }
        throw new IllegalArgumentException("unknown KV format '" + name + "' (supported: " + java.util.Arrays.toString(values()) + ")");
    }
}
