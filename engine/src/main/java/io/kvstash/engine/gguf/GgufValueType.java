package io.kvstash.engine.gguf;

/** Metadata value types of GGUF v2/v3. */
public enum GgufValueType {
    UINT8(1), INT8(1), UINT16(2), INT16(2), UINT32(4), INT32(4), FLOAT32(4), BOOL(1),
    STRING(-1), ARRAY(-1), UINT64(8), INT64(8), FLOAT64(8);

    private static final GgufValueType[] VALUES = values();

    /** Bytes of one value, or -1 when it has variable length. */
    public final int size;

    GgufValueType(int size) {
        this.size = size;
    }

    static GgufValueType byId(long id) {
        return id >= 0 && id < VALUES.length ? VALUES[(int) id] : null;
    }
}
