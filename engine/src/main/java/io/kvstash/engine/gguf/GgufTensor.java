package io.kvstash.engine.gguf;

import java.lang.foreign.MemorySegment;

/**
 * One tensor of a GGUF file: its shape in GGML order ({@code dims[0]} is the contiguous, innermost
 * dimension), its type, and a read-only slice of the mapped file holding its data.
 */
public record GgufTensor(String name, GgmlType type, long[] dims, long elementCount, long offset, MemorySegment data) {

    /** Elements in one row (the innermost dimension). */
    public long rowLength() {
        return dims[0];
    }

    /** Number of rows: the product of all dimensions but the innermost. */
    public long rowCount() {
        return dims.length == 0 ? 1 : elementCount / dims[0];
    }

    public String shape() {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < dims.length; i++) {
            sb.append(i == 0 ? "" : ", ").append(dims[i]);
        }
        return sb.append(']').toString();
    }
}
