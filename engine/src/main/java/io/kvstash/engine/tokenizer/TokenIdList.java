package io.kvstash.engine.tokenizer;

import java.util.Arrays;

/** A growable list of token ids without boxing, for building the output of {@link Tokenizer#encode}. */
final class TokenIdList {
    private int[] ids;
    private int size;

    TokenIdList(int expectedSize) {
        ids = new int[Math.max(8, expectedSize)];
    }

    void add(int id) {
        if (size == ids.length) {
            ids = Arrays.copyOf(ids, ids.length * 2);
        }
        ids[size++] = id;
    }

    void addAll(int[] more) {
        if (size + more.length > ids.length) {
            ids = Arrays.copyOf(ids, Math.max(ids.length * 2, size + more.length));
        }
        System.arraycopy(more, 0, ids, size, more.length);
        size += more.length;
    }

    void clear() {
        size = 0;
    }

    int[] toArray() {
        return Arrays.copyOf(ids, size);
    }
}
