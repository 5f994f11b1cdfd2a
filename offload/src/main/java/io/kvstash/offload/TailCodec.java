package io.kvstash.offload;

import io.kvstash.engine.kv.ChunkLayout;
import io.kvstash.engine.kv.KvChunk;
import io.kvstash.engine.kv.KvFormat;
import io.kvstash.engine.kv.KvGeometry;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The filled positions of an F32 tail as bytes: for each (layer, K then V, KV head) block of the
 * F32 layout, its first {@code filled × headDim} floats, as they are in memory. Restoring copies
 * them back, so a resumed tail is bit-identical to the one that was saved.
 */
final class TailCodec {
    private TailCodec() {
    }

    static int bytes(KvGeometry g, int filled) {
        return 2 * g.layers() * g.kvHeads() * filled * g.headDim() * 4;
    }

    /** Whether every float of an exported tail is finite (an imported tail is otherwise unchecked data). */
    static boolean finite(byte[] bytes) {
        java.nio.FloatBuffer f = java.nio.ByteBuffer.wrap(bytes).order(java.nio.ByteOrder.nativeOrder()).asFloatBuffer();
        while (f.hasRemaining()) {
            if (!Float.isFinite(f.get())) {
                return false;
            }
        }
        return true;
    }

    static byte[] export(KvChunk tail, int filled) {
        if (tail.format() != KvFormat.F32) {
            throw new IllegalArgumentException("a tail is F32, got " + tail.format());
        }
        KvGeometry g = tail.geometry();
        ChunkLayout layout = tail.layout();
        int run = filled * g.headDim() * 4;
        byte[] out = new byte[bytes(g, filled)];
        int o = 0;
        for (int l = 0; l < g.layers(); l++) {
            for (int v = 0; v < 2; v++) {
                for (int h = 0; h < g.kvHeads(); h++) {
                    MemorySegment.copy(tail.data(), ValueLayout.JAVA_BYTE, layout.blockOffset(l, v == 1, h), out, o, run);
                    o += run;
                }
            }
        }
        return out;
    }

    static void restore(byte[] bytes, int filled, KvChunk tail) {
        KvGeometry g = tail.geometry();
        if (tail.format() != KvFormat.F32 || bytes.length != bytes(g, filled)) {
            throw new IllegalArgumentException("tail of " + bytes.length + " bytes does not hold " + filled + " positions of " + g);
        }
        ChunkLayout layout = tail.layout();
        int run = filled * g.headDim() * 4;
        int o = 0;
        for (int l = 0; l < g.layers(); l++) {
            for (int v = 0; v < 2; v++) {
                for (int h = 0; h < g.kvHeads(); h++) {
                    MemorySegment.copy(bytes, o, tail.data(), ValueLayout.JAVA_BYTE, layout.blockOffset(l, v == 1, h), run);
                    o += run;
                }
            }
        }
    }
}
