package io.kvstash.offload;

import io.kvstash.engine.kv.KvFormat;
import io.kvstash.engine.model.ModelFingerprint;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/**
 * The content address of a full chunk: SHA-256, truncated to 128 bits, of the previous chunk's
 * key, the model fingerprint, the KV format, the chunk size and the chunk's token ids. A chain, so
 * a key names the whole prefix up to the end of its chunk: two sequences with the same first
 * tokens get the same keys for those chunks (computed and stored once) and never for later ones.
 * The chain starts from the tenant's root, so chunks are never shared across tenants. Stable
 * across processes, restarts and replicas.
 */
public record ChunkKey(long high, long low) {
    public static final int BYTES = 16;

    public static ChunkKey of(byte[] bytes) {
        if (bytes.length != BYTES) {
            throw new IllegalArgumentException("a chunk key is " + BYTES + " bytes, got " + bytes.length);
        }
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.BIG_ENDIAN);
        return new ChunkKey(b.getLong(), b.getLong());
    }

    public byte[] bytes() {
        return ByteBuffer.allocate(BYTES).order(ByteOrder.BIG_ENDIAN).putLong(high).putLong(low).array();
    }

    /** The keys of the first {@code count} full chunks of {@code tokens}. */
    public static ChunkKey[] chain(String tenant, ModelFingerprint model, KvFormat format, int chunkTokens, int[] tokens, int count) {
        return extend(java.util.List.of(), tenant, model, format, chunkTokens, tokens, count);
    }

    /**
     * The keys of the first {@code count} full chunks of a KV holding {@code tokens}, the first
     * {@code known} of which are already named (chunks that were moved by a context shift have keys
     * no chain of tokens gives): those are taken as they are (up to {@code count}), the rest chained
     * on from the last of them, as chunks computed after them.
     */
    public static ChunkKey[] extend(java.util.List<ChunkKey> known, String tenant, ModelFingerprint model, KvFormat format, int chunkTokens,
                                    int[] tokens, int count) {
        if (count < 0 || (long) count * chunkTokens > tokens.length) {
            throw new IllegalArgumentException(count + " chunks of " + chunkTokens + " do not fit " + tokens.length + " tokens");
        }
        MessageDigest sha = sha256();
        ChunkKey[] keys = new ChunkKey[count];
        int first = Math.min(known.size(), count);
        for (int c = 0; c < first; c++) {
            keys[c] = known.get(c);
        }
        byte[] parent = first > 0 ? keys[first - 1].bytes()
                : sha.digest(("kvstash-chunk-root-v1\n" + tenant).getBytes(StandardCharsets.UTF_8));
        ByteBuffer ids = ByteBuffer.allocate(4 * chunkTokens).order(ByteOrder.LITTLE_ENDIAN);
        byte[] modelBytes = model.bytes();
        for (int c = first; c < count; c++) {
            sha.update(parent, 0, BYTES);
            sha.update(modelBytes);
            sha.update((byte) format.ordinal());
            sha.update(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(chunkTokens).array());
            ids.clear();
            for (int t = 0; t < chunkTokens; t++) {
                ids.putInt(tokens[c * chunkTokens + t]);
            }
            sha.update(ids.array());
            parent = sha.digest();
            keys[c] = of(java.util.Arrays.copyOf(parent, BYTES));
        }
        return keys;
    }

    /**
     * The key of chunk {@code key} moved by {@code delta} positions in a context shift: its keys
     * re-rotated (and re-encoded), so different content from the same tokens at their first
     * positions. Deterministic, so a replica that shifts the same chunk the same way names it alike.
     */
    public static ChunkKey shifted(ChunkKey key, int delta) {
        MessageDigest sha = sha256();
        sha.update("kvstash-chunk-shift-v1\n".getBytes(StandardCharsets.UTF_8));
        sha.update(key.bytes());
        sha.update(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(delta).array());
        return of(java.util.Arrays.copyOf(sha.digest(), BYTES));
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", e);
        }
    }

    @Override
    public String toString() {
        return HexFormat.of().formatHex(bytes());
    }
}
