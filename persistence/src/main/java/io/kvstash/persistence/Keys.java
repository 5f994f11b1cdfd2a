package io.kvstash.persistence;

import java.util.HexFormat;

/** Argument checks for keys, so that every operation refuses the same bad keys with the same words. */
final class Keys {
    /** RocksDB takes far longer keys; ours are hashes and ids, and a huge one is a caller's bug. */
    static final int MAX_KEY_BYTES = 1024;

    private Keys() {
    }

    static byte[] require(byte[] key, String what) {
        if (key == null) {
            throw new IllegalArgumentException(what + " must not be null");
        }
        if (key.length == 0) {
            throw new IllegalArgumentException(what + " must not be empty");
        }
        if (key.length > MAX_KEY_BYTES) {
            throw new IllegalArgumentException(what + " must be at most " + MAX_KEY_BYTES + " bytes, got " + key.length);
        }
        return key;
    }

    static String hex(byte[] key) {
        return key.length <= 32 ? HexFormat.of().formatHex(key) : HexFormat.of().formatHex(key, 0, 32) + "…";
    }
}
