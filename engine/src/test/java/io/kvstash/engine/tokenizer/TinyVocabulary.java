package io.kvstash.engine.tokenizer;

import java.util.ArrayList;
import java.util.List;

/**
 * A hand-made SentencePiece vocabulary laid out like Llama's (unknown, BOS, EOS, then the 256
 * byte tokens, then pieces), small enough to reason about merges in a test.
 */
final class TinyVocabulary {
    static final int UNKNOWN = 0;
    static final int BOS = 1;
    static final int EOS = 2;
    static final int FIRST_BYTE = 3;

    private final List<String> pieces = new ArrayList<>();
    private final List<Float> scores = new ArrayList<>();
    private final List<Integer> types = new ArrayList<>();
    private boolean addSpacePrefix = true;

    TinyVocabulary() {
        add("<unk>", 0, 2);
        add("<s>", 0, 3);
        add("</s>", 0, 3);
        for (int b = 0; b < 256; b++) {
            add(String.format("<0x%02X>", b), 0, 6);
        }
    }

    static int byteToken(int b) {
        return FIRST_BYTE + b;
    }

    TinyVocabulary piece(String text, float score) {
        return add(text, score, 1);
    }

    TinyVocabulary userDefined(String text) {
        return add(text, 0, 4);
    }

    TinyVocabulary control(String text) {
        return add(text, 0, 3);
    }

    TinyVocabulary withoutSpacePrefix() {
        addSpacePrefix = false;
        return this;
    }

    int id(String text) {
        int id = pieces.lastIndexOf(text);
        if (id < 0) {
            throw new IllegalArgumentException("no piece '" + text + "'");
        }
        return id;
    }

    SentencePieceTokenizer tokenizer() {
        float[] s = new float[scores.size()];
        int[] t = new int[types.size()];
        for (int i = 0; i < s.length; i++) {
            s[i] = scores.get(i);
            t[i] = types.get(i);
        }
        return new SentencePieceTokenizer(pieces.toArray(String[]::new), s, t, BOS, EOS, UNKNOWN, -1, -1, true, false, addSpacePrefix);
    }

    private TinyVocabulary add(String text, float score, int type) {
        pieces.add(text);
        scores.add(score);
        types.add(type);
        return this;
    }
}
