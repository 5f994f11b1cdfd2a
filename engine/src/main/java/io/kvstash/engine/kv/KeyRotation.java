package io.kvstash.engine.kv;

/**
 * Moves stored keys to other positions: the model's rotary position embedding applied for a
 * position delta (RoPE rotations compose, so a key rotated for position p and then by δ is the
 * key of position p + δ). Values carry no position and are never touched.
 */
@FunctionalInterface
public interface KeyRotation {
    /** Rotates {@code tokens} key vectors of one head, {@code keys[t·headDim ..]} for t &lt; tokens, by {@code delta} positions. */
    void rotate(float[] keys, int tokens, int delta);
}
