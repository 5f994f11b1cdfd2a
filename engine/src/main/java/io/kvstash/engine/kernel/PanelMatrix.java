package io.kvstash.engine.kernel;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

/**
 * A weight matrix repacked at load time for the forward pass: rows in panels of {@link #PANEL},
 * each panel stored column by column, so one vector load reads one column of {@code FL}
 * consecutive rows and the lanes of an accumulator are output rows. The kernels then need no
 * horizontal reduction: each output {@code out[t][r] = Σ_c w[r][c]·x[t][c]} is one lane summing
 * one fused multiply-add per column, in column order, from zero.
 *
 * <p>That order is the same in every path — one token or a batch, any vector width, the scalar
 * twin ({@link Math#fma}) — so results are bit-identical between them: a sequence decoded in a
 * batch gets exactly the logits it gets alone, and the scalar build computes what the SIMD build
 * computes.
 *
 * <p>Layouts (little-endian, panel {@code p} holds rows {@code [16p, 16p+16)}, rows past
 * {@link #rows} are zero):
 * <ul>
 * <li>{@code FLOAT} (from F32, F16, BF16, converted exactly): {@code (panel, col, 16)} f32.</li>
 * <li>{@code CODES} (block-quantized formats): per panel, per group of {@code group} columns, a
 * block of {@code scales[16]} f32, {@code offsets[16]} f32 (only in formats that have offsets:
 * symmetric ones such as Q8_0 and Q4_0 leave them out, a tenth of a Q8_0 block) and
 * {@code codes[group][16]} int8, with {@code w = code·scale − offset} (a multiply, then a
 * subtract: what ggml's dequantizers compute, so the weights are exactly the file's). Blocks are
 * multiples of 64 bytes.</li>
 * </ul>
 */
public final class PanelMatrix {
    /** Rows per panel; also the granularity of row ranges handed to {@link #multiply}. */
    public static final int PANEL = 16;
    /** Row vectors computed together by the kernels. */
    private static final int TILE_VECTORS = 4;
    /** Tokens one pass of the batched kernel covers. */
    private static final int TOKEN_TILE = 4;
    /**
     * Columns of a tile decoded at a time for several tokens (rounded to whole groups): 64 columns
     * of {@code TILE_ROWS} rows are 16 KB at 512 bits, so the decoded block and the partial sums
     * stay in L1 while every token of the round passes over them.
     */
    private static final int BLOCK_COLS = 64;
    /** Largest block: a whole group when groups are wider than {@link #BLOCK_COLS}. */
    private static final int MAX_BLOCK_COLS = 256;
    /** Tokens whose partial sums are kept across the column blocks of a tile; more take further rounds. */
    private static final int TOKEN_ROUND = 64;
    private static final int FL = Simd.FL;
    private static final int TILE_ROWS = TILE_VECTORS * FL;
    /** Rows worth handing to one {@link #multiply} call of one token: a whole tile (a multiple of {@link #PANEL}). */
    public static final int ROW_GRAIN = Math.max(PANEL, TILE_ROWS);
    /**
     * Rows worth handing to one {@link #multiply} call of several tokens: half a tile, which the
     * batched path computes with two-vector kernels, eight tokens at a time where the batch has
     * them: as many FMAs per weight load as the whole-tile kernel, so as fast per row (with four
     * tokens at a time, 288-column matrices cut in such pieces took 20% longer; see
     * {@code PanelMatrixBenchmark}'s {@code piece}). The finer grain lets two threads split the
     * small matrices (288 rows are nine pieces instead of five, one of them padded) without one
     * waiting a whole tile for the other.
     */
    public static final int BATCH_ROW_GRAIN = Math.max(PANEL, TILE_ROWS / 2);

    /** The grain to split rows by for {@code tokens} tokens. */
    public static int rowGrain(int tokens) {
        return tokens == 1 ? ROW_GRAIN : BATCH_ROW_GRAIN;
    }
    private static final ValueLayout.OfFloat FLOAT_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final long COLUMN_FLOAT_BYTES = PANEL * 4L;
    private static final long SCALES_BYTES = PANEL * 4L;

    enum Kind { FLOAT, CODES }

    private final String name;
    public final int rows;
    public final int cols;
    private final Kind kind;
    private final int group;
    private final long panelBytes;
    private final long blockBytes;
    /** Bytes before a block's codes: its scales, then its offsets if the format has them. */
    private final long headerBytes;
    private final int blockCols;
    private final boolean hasOffsets;
    private final MemorySegment data;

    private PanelMatrix(String name, int rows, int cols, Kind kind, int group, boolean hasOffsets, MemorySegment data) {
        this.name = name;
        this.hasOffsets = hasOffsets;
        this.rows = rows;
        this.cols = cols;
        this.kind = kind;
        this.group = group;
        this.headerBytes = kind == Kind.CODES ? (hasOffsets ? 2 : 1) * SCALES_BYTES : 0;
        this.blockBytes = kind == Kind.CODES ? headerBytes + (long) group * PANEL : 0;
        this.blockCols = kind == Kind.CODES ? Math.max(group, BLOCK_COLS / group * group) : BLOCK_COLS;
        if (blockCols > MAX_BLOCK_COLS) {
            throw new IllegalArgumentException(name + ": groups of " + group + " columns are wider than " + MAX_BLOCK_COLS);
        }
        this.panelBytes = kind == Kind.CODES ? blockBytes * (cols / group) : COLUMN_FLOAT_BYTES * cols;
        this.data = data;
    }

    /** Decodes one row of a block format into codes and per-group (scale, offset). */
    interface RowDecoder {
        int group();

        /** False when every offset is +0 (symmetric formats such as Q8_0 and Q4_0). */
        boolean hasOffset();

        void decodeRow(int row, byte[] codes, float[] scales, float[] offsets);
    }

    /** Repacks {@code m} into memory of {@code arena}; the arena's owner frees it. */
    public static PanelMatrix pack(WeightMatrix m, Arena arena) {
        RowDecoder decoder = codesOf(m);
        int panels = (m.rows + PANEL - 1) / PANEL;
        if (decoder == null) {
            PanelMatrix p = new PanelMatrix(m.name, m.rows, m.cols, Kind.FLOAT, m.cols, false, null);
            MemorySegment seg = arena.allocate(p.panelBytes * panels, 64);
            float[] row = new float[m.cols];
            float[] panel = new float[PANEL * m.cols];
            for (int pi = 0; pi < panels; pi++) {
                java.util.Arrays.fill(panel, 0f);
                for (int i = 0; i < PANEL && pi * PANEL + i < m.rows; i++) {
                    m.dequantizeRowScalar(pi * PANEL + i, row, 0);
                    for (int c = 0; c < m.cols; c++) {
                        panel[c * PANEL + i] = row[c];
                    }
                }
                MemorySegment.copy(panel, 0, seg, FLOAT_LE, pi * p.panelBytes, panel.length);
            }
            return new PanelMatrix(m.name, m.rows, m.cols, Kind.FLOAT, m.cols, false, seg);
        }
        int group = decoder.group();
        if (m.cols % group != 0) {
            throw new IllegalArgumentException(m.name + ": " + m.cols + " columns are not a multiple of the group size " + group);
        }
        PanelMatrix shape = new PanelMatrix(m.name, m.rows, m.cols, Kind.CODES, group, decoder.hasOffset(), null);
        // 16 bytes of padding: a 128-bit kernel's last code load reads past the last column (see codesOneToken).
        MemorySegment seg = arena.allocate(shape.panelBytes * panels + 16, 64);
        int groups = m.cols / group;
        byte[] codes = new byte[m.cols];
        float[] scales = new float[groups];
        float[] offsets = new float[groups];
        byte[] panel = new byte[(int) shape.panelBytes];
        MemorySegment panelView = MemorySegment.ofArray(panel);
        for (int pi = 0; pi < panels; pi++) {
            java.util.Arrays.fill(panel, (byte) 0);
            for (int i = 0; i < PANEL && pi * PANEL + i < m.rows; i++) {
                java.util.Arrays.fill(offsets, 0f);
                decoder.decodeRow(pi * PANEL + i, codes, scales, offsets);
                for (int g = 0; g < groups; g++) {
                    long block = g * shape.blockBytes;
                    panelView.set(FLOAT_LE, block + 4L * i, scales[g]);
                    if (shape.hasOffsets) {
                        panelView.set(FLOAT_LE, block + 4L * (PANEL + i), offsets[g]);
                    }
                    for (int j = 0; j < group; j++) {
                        panel[(int) (block + shape.headerBytes) + j * PANEL + i] = codes[g * group + j];
                    }
                }
            }
            MemorySegment.copy(panel, 0, seg, ValueLayout.JAVA_BYTE, pi * shape.panelBytes, panel.length);
        }
        return new PanelMatrix(m.name, m.rows, m.cols, Kind.CODES, group, decoder.hasOffset(), seg);
    }

    /** The code decoder of a block format, or null for float formats (packed as floats). */
    private static RowDecoder codesOf(WeightMatrix m) {
        return switch (m.type()) {
            case F32, F16, BF16 -> null;
            default -> {
                BlockDecoder decoder = BlockDecoder.of(m.type());
                yield new RowDecoder() {
                    @Override
                    public int group() {
                        return decoder.group();
                    }

                    @Override
                    public boolean hasOffset() {
                        return decoder.hasOffset();
                    }

                    @Override
                    public void decodeRow(int row, byte[] codes, float[] scales, float[] offsets) {
                        decoder.decodeRow(m.data, row * m.rowBytes, m.cols, codes, scales, offsets);
                    }
                };
            }
        };
    }

    public String name() {
        return name;
    }

    /** Bytes of the packed weights. */
    public long byteSize() {
        return data.byteSize();
    }

    /** The weight the kernels use at {@code (row, col)}: the reference for tests. */
    public float weight(int row, int col) {
        long panel = (long) (row / PANEL) * panelBytes;
        int lane = row % PANEL;
        if (kind == Kind.FLOAT) {
            return data.get(FLOAT_LE, panel + col * COLUMN_FLOAT_BYTES + 4L * lane);
        }
        long block = panel + (long) (col / group) * blockBytes;
        float scale = data.get(FLOAT_LE, block + 4L * lane);
        float offset = hasOffsets ? data.get(FLOAT_LE, block + 4L * (PANEL + lane)) : 0f;
        return data.get(ValueLayout.JAVA_BYTE, block + headerBytes + (long) (col % group) * PANEL + lane) * scale - offset;
    }

    /** Floats of scratch one worker needs for {@link #multiply} on matrices of up to {@code maxCols} columns. */
    public static int scratchFloats(int maxCols) {
        return TILE_ROWS * MAX_BLOCK_COLS + TILE_ROWS * TOKEN_ROUND + TILE_ROWS * TOKEN_TILE;
    }

    /**
     * {@code out[outOff + t·outStride + r] = Σ_c w[r][c] · x[t·cols + c]} for tokens {@code t < n}
     * and rows {@code [r0, r1)}; {@code r0} is a multiple of {@link #PANEL}, {@code r1} too or
     * {@link #rows}. {@code scratch} holds {@link #scratchFloats} floats (used when {@code n > 1}).
     */
    public void multiply(float[] x, int n, float[] out, int outOff, int outStride, int r0, int r1, float[] scratch) {
        if (r0 == r1 && r0 >= 0 && r1 <= rows && n >= 1) {
            return;
        }
        if (r0 % PANEL != 0 || r0 < 0 || r0 > r1 || r1 > rows || (r1 % PANEL != 0 && r1 != rows) || n < 1) {
            throw new IllegalArgumentException(name + ": rows [" + r0 + ", " + r1 + ") of " + rows + ", " + n + " tokens");
        }
        if (!Simd.ENABLED) {
            multiplyScalar(x, n, out, outOff, outStride, r0, r1);
            return;
        }
        // Tiles of four row vectors. A tile's last vectors may lie past r1: they repeat the last
        // vector inside the range (same cost as a full tile: the one-token kernels are bound by
        // FMA latency, not by loads) and are not stored. A vector may also run past r1 at the
        // matrix's end, into the zero rows that pad its last panel; those lanes are not stored.
        for (int r = r0; r < r1; r += TILE_ROWS) {
            int valid = Math.min(TILE_ROWS, r1 - r);
            int last = (valid - 1) / FL;
            if (n == 1) {
                if (kind == Kind.CODES) {
                    codesOneToken(x, out, outOff + r, r, last, valid, scratch);
                } else {
                    floatOneToken(x, out, outOff + r, r, last, valid, scratch);
                }
                continue;
            }
            int staging = scratch.length - TILE_ROWS * TOKEN_TILE;
            int acc = staging - TILE_ROWS * TOKEN_ROUND;
            for (int round = 0; round < n; round += TOKEN_ROUND) {
                int tokens = Math.min(TOKEN_ROUND, n - round);
                java.util.Arrays.fill(scratch, acc, acc + (tokens + TOKEN_TILE - 1) / TOKEN_TILE * TOKEN_TILE * TILE_ROWS, 0f);
                for (int c0 = 0; c0 < cols; c0 += blockCols) {
                    int c1 = Math.min(cols, c0 + blockCols);
                    int t = 0;
                    if (kind == Kind.CODES && last == TILE_VECTORS - 1) {
                        // A whole tile decodes its block during the first four tokens' pass.
                        decodeBlockFourTokens(r, scratch, x, round, Math.min(round + 1, n - 1), Math.min(round + 2, n - 1),
                                Math.min(round + 3, n - 1), c0, c1, acc);
                        t = TOKEN_TILE;
                    } else {
                        for (int v = 0; v <= last; v++) {
                            if (kind == Kind.CODES) {
                                decodeCodes(r + v * FL, c0, c1, scratch, v * FL);
                            } else {
                                copyFloats(r + v * FL, c0, c1, scratch, v * FL);
                            }
                        }
                    }
                    if (last < 2) {
                        for (; t + 8 <= tokens; t += 8) {
                            blockEightTokensTwoVectors(scratch, x, round + t, c0, c1, acc + t * TILE_ROWS);
                        }
                    }
                    for (; t < tokens; t += TOKEN_TILE) {
                        int t0 = round + t;
                        int t1 = Math.min(t0 + 1, n - 1);
                        int t2 = Math.min(t0 + 2, n - 1);
                        int t3 = Math.min(t0 + 3, n - 1);
                        if (last < 2) {
                            blockFourTokensTwoVectors(scratch, x, t0, t1, t2, t3, c0, c1, acc + t * TILE_ROWS);
                        } else {
                            blockFourTokens(scratch, x, t0, t1, t2, t3, c0, c1, acc + t * TILE_ROWS);
                        }
                    }
                }
                for (int t = 0; t < tokens; t++) {
                    int to = outOff + (round + t) * outStride + r;
                    if (valid == TILE_ROWS) {
                        // Whole vectors: a System.arraycopy per token and tile is a stub call, a few percent of a step.
                        for (int v = 0; v < TILE_ROWS; v += FL) {
                            FloatVector.fromArray(Simd.F, scratch, acc + t * TILE_ROWS + v).intoArray(out, to + v);
                        }
                    } else {
                        System.arraycopy(scratch, acc + t * TILE_ROWS, out, to, valid);
                    }
                }
            }
        }
    }

    // ---- The kernels. Inner loops call nothing: a vector passed to or returned from a method C2
    // declines to inline (it may, for "cold" or "too large" callees) is boxed, and its operations
    // fall back to Java code, an order of magnitude slower. Methods also stay small enough for C1
    // to compile with profiling ("out of virtual registers" sends a method to a tier without call
    // profiles, and C2 then inlines nothing of it). ----

    /** Byte address of row {@code row}'s lane in its panel, for float panels (column 0). */
    private long floatLane(int row) {
        return (long) (row / PANEL) * panelBytes + 4L * (row % PANEL);
    }

    // A whole tile's results are stored straight into out (a System.arraycopy per tile is a stub
    // call). A partial tile's leave the kernels through the last TILE_ROWS x TOKEN_TILE floats of the
    // scratch array (whole vectors, always in bounds) and System.arraycopy of the rows that are
    // stored, rather than through a helper taking vectors: C2 may decline to inline a helper into a
    // kernel this big (NodeCountInliningCutoff), and a vector passed to a call that is not inlined
    // is boxed.

    /** Row vectors {@code 0 .. last} from row {@code r} (later ones repeat the last, unstored). */
    private void floatOneToken(float[] x, float[] out, int off, int r, int last, int valid, float[] scratch) {
        long a0 = floatLane(r);
        long a1 = floatLane(r + Math.min(1, last) * FL);
        long a2 = floatLane(r + Math.min(2, last) * FL);
        long a3 = floatLane(r + Math.min(3, last) * FL);
        FloatVector s0 = FloatVector.zero(Simd.F);
        FloatVector s1 = s0;
        FloatVector s2 = s0;
        FloatVector s3 = s0;
        for (int c = 0; c < cols; c++) {
            FloatVector xv = FloatVector.broadcast(Simd.F, x[c]);
            long col = c * COLUMN_FLOAT_BYTES;
            s0 = FloatVector.fromMemorySegment(Simd.F, data, a0 + col, ByteOrder.LITTLE_ENDIAN).fma(xv, s0);
            s1 = FloatVector.fromMemorySegment(Simd.F, data, a1 + col, ByteOrder.LITTLE_ENDIAN).fma(xv, s1);
            s2 = FloatVector.fromMemorySegment(Simd.F, data, a2 + col, ByteOrder.LITTLE_ENDIAN).fma(xv, s2);
            s3 = FloatVector.fromMemorySegment(Simd.F, data, a3 + col, ByteOrder.LITTLE_ENDIAN).fma(xv, s3);
        }
        if (valid == TILE_ROWS) {
            s0.intoArray(out, off);
            s1.intoArray(out, off + FL);
            s2.intoArray(out, off + 2 * FL);
            s3.intoArray(out, off + 3 * FL);
            return;
        }
        int tile = scratch.length - TILE_ROWS * TOKEN_TILE;
        s0.intoArray(scratch, tile);
        s1.intoArray(scratch, tile + FL);
        s2.intoArray(scratch, tile + 2 * FL);
        s3.intoArray(scratch, tile + 3 * FL);
        System.arraycopy(scratch, tile, out, off, valid);
    }

    /**
     * As {@link #floatOneToken}, decoding the codes in the loop. A row vector's codes are loaded
     * from its first lane of the 16-byte panel column, so they are always the load's low part (at
     * 128 bits the load reads 4 bytes past them; the segment is padded for the last column).
     */
    private void codesOneToken(float[] x, float[] out, int off, int r, int last, int valid, float[] scratch) {
        int r1 = r + Math.min(1, last) * FL;
        int r2 = r + Math.min(2, last) * FL;
        int r3 = r + Math.min(3, last) * FL;
        long p0 = (long) (r / PANEL) * panelBytes;
        long p1 = (long) (r1 / PANEL) * panelBytes;
        long p2 = (long) (r2 / PANEL) * panelBytes;
        long p3 = (long) (r3 / PANEL) * panelBytes;
        int l0 = r % PANEL;
        int l1 = r1 % PANEL;
        int l2 = r2 % PANEL;
        int l3 = r3 % PANEL;
        FloatVector s0 = FloatVector.zero(Simd.F);
        FloatVector s1 = s0;
        FloatVector s2 = s0;
        FloatVector s3 = s0;
        int groups = cols / group;
        for (int g = 0; g < groups; g++) {
            long gb = g * blockBytes;
            FloatVector sc0 = FloatVector.fromMemorySegment(Simd.F, data, p0 + gb + 4L * l0, ByteOrder.LITTLE_ENDIAN);
            FloatVector sc1 = FloatVector.fromMemorySegment(Simd.F, data, p1 + gb + 4L * l1, ByteOrder.LITTLE_ENDIAN);
            FloatVector sc2 = FloatVector.fromMemorySegment(Simd.F, data, p2 + gb + 4L * l2, ByteOrder.LITTLE_ENDIAN);
            FloatVector sc3 = FloatVector.fromMemorySegment(Simd.F, data, p3 + gb + 4L * l3, ByteOrder.LITTLE_ENDIAN);
            long c0 = p0 + gb + headerBytes + l0;
            long c1 = p1 + gb + headerBytes + l1;
            long c2 = p2 + gb + headerBytes + l2;
            long c3 = p3 + gb + headerBytes + l3;
            int xg = g * group;
            if (!hasOffsets) {
                // Offsets are +0: code·scale − 0 is code·scale, bit for bit (as in decodeCodes).
                for (int j = 0; j < group; j++) {
                    FloatVector xv = FloatVector.broadcast(Simd.F, x[xg + j]);
                    long col = (long) j * PANEL;
                    FloatVector w0 = (FloatVector) ByteVector.fromMemorySegment(Simd.B, data, c0 + col, ByteOrder.LITTLE_ENDIAN)
                            .convertShape(VectorOperators.B2F, Simd.F, 0);
                    FloatVector w1 = (FloatVector) ByteVector.fromMemorySegment(Simd.B, data, c1 + col, ByteOrder.LITTLE_ENDIAN)
                            .convertShape(VectorOperators.B2F, Simd.F, 0);
                    FloatVector w2 = (FloatVector) ByteVector.fromMemorySegment(Simd.B, data, c2 + col, ByteOrder.LITTLE_ENDIAN)
                            .convertShape(VectorOperators.B2F, Simd.F, 0);
                    FloatVector w3 = (FloatVector) ByteVector.fromMemorySegment(Simd.B, data, c3 + col, ByteOrder.LITTLE_ENDIAN)
                            .convertShape(VectorOperators.B2F, Simd.F, 0);
                    s0 = w0.mul(sc0).fma(xv, s0);
                    s1 = w1.mul(sc1).fma(xv, s1);
                    s2 = w2.mul(sc2).fma(xv, s2);
                    s3 = w3.mul(sc3).fma(xv, s3);
                }
                continue;
            }
            FloatVector of0 = FloatVector.fromMemorySegment(Simd.F, data, p0 + gb + 4L * (PANEL + l0), ByteOrder.LITTLE_ENDIAN);
            FloatVector of1 = FloatVector.fromMemorySegment(Simd.F, data, p1 + gb + 4L * (PANEL + l1), ByteOrder.LITTLE_ENDIAN);
            FloatVector of2 = FloatVector.fromMemorySegment(Simd.F, data, p2 + gb + 4L * (PANEL + l2), ByteOrder.LITTLE_ENDIAN);
            FloatVector of3 = FloatVector.fromMemorySegment(Simd.F, data, p3 + gb + 4L * (PANEL + l3), ByteOrder.LITTLE_ENDIAN);
            for (int j = 0; j < group; j++) {
                FloatVector xv = FloatVector.broadcast(Simd.F, x[xg + j]);
                long col = (long) j * PANEL;
                FloatVector w0 = (FloatVector) ByteVector.fromMemorySegment(Simd.B, data, c0 + col, ByteOrder.LITTLE_ENDIAN)
                        .convertShape(VectorOperators.B2F, Simd.F, 0);
                FloatVector w1 = (FloatVector) ByteVector.fromMemorySegment(Simd.B, data, c1 + col, ByteOrder.LITTLE_ENDIAN)
                        .convertShape(VectorOperators.B2F, Simd.F, 0);
                FloatVector w2 = (FloatVector) ByteVector.fromMemorySegment(Simd.B, data, c2 + col, ByteOrder.LITTLE_ENDIAN)
                        .convertShape(VectorOperators.B2F, Simd.F, 0);
                FloatVector w3 = (FloatVector) ByteVector.fromMemorySegment(Simd.B, data, c3 + col, ByteOrder.LITTLE_ENDIAN)
                        .convertShape(VectorOperators.B2F, Simd.F, 0);
                s0 = w0.mul(sc0).sub(of0).fma(xv, s0);
                s1 = w1.mul(sc1).sub(of1).fma(xv, s1);
                s2 = w2.mul(sc2).sub(of2).fma(xv, s2);
                s3 = w3.mul(sc3).sub(of3).fma(xv, s3);
            }
        }
        if (valid == TILE_ROWS) {
            s0.intoArray(out, off);
            s1.intoArray(out, off + FL);
            s2.intoArray(out, off + 2 * FL);
            s3.intoArray(out, off + 3 * FL);
            return;
        }
        int tile = scratch.length - TILE_ROWS * TOKEN_TILE;
        s0.intoArray(scratch, tile);
        s1.intoArray(scratch, tile + FL);
        s2.intoArray(scratch, tile + 2 * FL);
        s3.intoArray(scratch, tile + 3 * FL);
        System.arraycopy(scratch, tile, out, off, valid);
    }

    // ---- several tokens: a block of a tile's columns decoded once into scratch (col, TILE_ROWS),
    // every token of the round passes over it, partial sums kept in scratch between blocks (storing
    // and reloading a float sum changes nothing: each lane still adds its columns in order, from zero).

    private void decodeCodes(int r, int c0, int c1, float[] scratch, int lane) {
        long p = (long) (r / PANEL) * panelBytes;
        int l = r % PANEL;
        for (int g = c0 / group, g1 = c1 / group; g < g1; g++) {
            long gb = p + g * blockBytes;
            FloatVector sc = FloatVector.fromMemorySegment(Simd.F, data, gb + 4L * l, ByteOrder.LITTLE_ENDIAN);
            long codes = gb + headerBytes + l;
            int base = (g * group - c0) * TILE_ROWS + lane;
            if (!hasOffsets) {
                // Offsets are +0: code·scale − 0 is code·scale, bit for bit.
                for (int j = 0; j < group; j++) {
                    FloatVector w = (FloatVector) ByteVector.fromMemorySegment(Simd.B, data, codes + (long) j * PANEL, ByteOrder.LITTLE_ENDIAN)
                            .convertShape(VectorOperators.B2F, Simd.F, 0);
                    w.mul(sc).intoArray(scratch, base + j * TILE_ROWS);
                }
                continue;
            }
            FloatVector of = FloatVector.fromMemorySegment(Simd.F, data, gb + 4L * (PANEL + l), ByteOrder.LITTLE_ENDIAN);
            for (int j = 0; j < group; j++) {
                FloatVector w = (FloatVector) ByteVector.fromMemorySegment(Simd.B, data, codes + (long) j * PANEL, ByteOrder.LITTLE_ENDIAN)
                        .convertShape(VectorOperators.B2F, Simd.F, 0);
                w.mul(sc).sub(of).intoArray(scratch, base + j * TILE_ROWS);
            }
        }
    }

    /**
     * {@link #decodeCodes} of a whole tile's four row vectors fused with {@link #blockFourTokens}
     * for the round's first four tokens: each column's weights are decoded in registers, stored in
     * the block for the later passes, and multiplied at once, so the conversions overlap the FMA
     * chains instead of running in a pass with no arithmetic beside them (at 16 tokens, 5–7% less
     * time on stories15M's output matrix, 7–15% on a 1024-column one; {@code PanelMatrixBenchmark}).
     * The same operations in the same order as decoding first, so the sums are bit-identical.
     */
    private void decodeBlockFourTokens(int r, float[] w, float[] x, int t0, int t1, int t2, int t3, int c0, int c1, int acc) {
        // Panel base and lane of each row vector: scales at 4·lane bytes into a block, codes at lane.
        long p0 = (long) (r / PANEL) * panelBytes;
        long p1 = (long) ((r + FL) / PANEL) * panelBytes;
        long p2 = (long) ((r + 2 * FL) / PANEL) * panelBytes;
        long p3 = (long) ((r + 3 * FL) / PANEL) * panelBytes;
        int l0 = r % PANEL;
        int l1 = (r + FL) % PANEL;
        int l2 = (r + 2 * FL) % PANEL;
        int l3 = (r + 3 * FL) % PANEL;
        FloatVector a00 = FloatVector.fromArray(Simd.F, w, acc);
        FloatVector a01 = FloatVector.fromArray(Simd.F, w, acc + FL);
        FloatVector a02 = FloatVector.fromArray(Simd.F, w, acc + 2 * FL);
        FloatVector a03 = FloatVector.fromArray(Simd.F, w, acc + 3 * FL);
        FloatVector a10 = FloatVector.fromArray(Simd.F, w, acc + TILE_ROWS);
        FloatVector a11 = FloatVector.fromArray(Simd.F, w, acc + TILE_ROWS + FL);
        FloatVector a12 = FloatVector.fromArray(Simd.F, w, acc + TILE_ROWS + 2 * FL);
        FloatVector a13 = FloatVector.fromArray(Simd.F, w, acc + TILE_ROWS + 3 * FL);
        FloatVector a20 = FloatVector.fromArray(Simd.F, w, acc + 2 * TILE_ROWS);
        FloatVector a21 = FloatVector.fromArray(Simd.F, w, acc + 2 * TILE_ROWS + FL);
        FloatVector a22 = FloatVector.fromArray(Simd.F, w, acc + 2 * TILE_ROWS + 2 * FL);
        FloatVector a23 = FloatVector.fromArray(Simd.F, w, acc + 2 * TILE_ROWS + 3 * FL);
        FloatVector a30 = FloatVector.fromArray(Simd.F, w, acc + 3 * TILE_ROWS);
        FloatVector a31 = FloatVector.fromArray(Simd.F, w, acc + 3 * TILE_ROWS + FL);
        FloatVector a32 = FloatVector.fromArray(Simd.F, w, acc + 3 * TILE_ROWS + 2 * FL);
        FloatVector a33 = FloatVector.fromArray(Simd.F, w, acc + 3 * TILE_ROWS + 3 * FL);
        int x0 = t0 * cols;
        int x1 = t1 * cols;
        int x2 = t2 * cols;
        int x3 = t3 * cols;
        for (int g = c0 / group, g1 = c1 / group, wo = 0; g < g1; g++) {
            long gb = g * blockBytes;
            FloatVector sc0 = FloatVector.fromMemorySegment(Simd.F, data, p0 + gb + 4L * l0, ByteOrder.LITTLE_ENDIAN);
            FloatVector sc1 = FloatVector.fromMemorySegment(Simd.F, data, p1 + gb + 4L * l1, ByteOrder.LITTLE_ENDIAN);
            FloatVector sc2 = FloatVector.fromMemorySegment(Simd.F, data, p2 + gb + 4L * l2, ByteOrder.LITTLE_ENDIAN);
            FloatVector sc3 = FloatVector.fromMemorySegment(Simd.F, data, p3 + gb + 4L * l3, ByteOrder.LITTLE_ENDIAN);
            FloatVector of0 = sc0;
            FloatVector of1 = sc0;
            FloatVector of2 = sc0;
            FloatVector of3 = sc0;
            if (hasOffsets) {
                of0 = FloatVector.fromMemorySegment(Simd.F, data, p0 + gb + 4L * (PANEL + l0), ByteOrder.LITTLE_ENDIAN);
                of1 = FloatVector.fromMemorySegment(Simd.F, data, p1 + gb + 4L * (PANEL + l1), ByteOrder.LITTLE_ENDIAN);
                of2 = FloatVector.fromMemorySegment(Simd.F, data, p2 + gb + 4L * (PANEL + l2), ByteOrder.LITTLE_ENDIAN);
                of3 = FloatVector.fromMemorySegment(Simd.F, data, p3 + gb + 4L * (PANEL + l3), ByteOrder.LITTLE_ENDIAN);
            }
            long k0 = p0 + gb + headerBytes + l0;
            long k1 = p1 + gb + headerBytes + l1;
            long k2 = p2 + gb + headerBytes + l2;
            long k3 = p3 + gb + headerBytes + l3;
            for (int j = 0, c = g * group; j < group; j++, c++, wo += TILE_ROWS) {
                long col = (long) j * PANEL;
                FloatVector w0 = ((FloatVector) ByteVector.fromMemorySegment(Simd.B, data, k0 + col, ByteOrder.LITTLE_ENDIAN)
                        .convertShape(VectorOperators.B2F, Simd.F, 0)).mul(sc0);
                FloatVector w1 = ((FloatVector) ByteVector.fromMemorySegment(Simd.B, data, k1 + col, ByteOrder.LITTLE_ENDIAN)
                        .convertShape(VectorOperators.B2F, Simd.F, 0)).mul(sc1);
                FloatVector w2 = ((FloatVector) ByteVector.fromMemorySegment(Simd.B, data, k2 + col, ByteOrder.LITTLE_ENDIAN)
                        .convertShape(VectorOperators.B2F, Simd.F, 0)).mul(sc2);
                FloatVector w3 = ((FloatVector) ByteVector.fromMemorySegment(Simd.B, data, k3 + col, ByteOrder.LITTLE_ENDIAN)
                        .convertShape(VectorOperators.B2F, Simd.F, 0)).mul(sc3);
                if (hasOffsets) {
                    w0 = w0.sub(of0);
                    w1 = w1.sub(of1);
                    w2 = w2.sub(of2);
                    w3 = w3.sub(of3);
                }
                w0.intoArray(w, wo);
                w1.intoArray(w, wo + FL);
                w2.intoArray(w, wo + 2 * FL);
                w3.intoArray(w, wo + 3 * FL);
                FloatVector b = FloatVector.broadcast(Simd.F, x[x0 + c]);
                a00 = w0.fma(b, a00);
                a01 = w1.fma(b, a01);
                a02 = w2.fma(b, a02);
                a03 = w3.fma(b, a03);
                b = FloatVector.broadcast(Simd.F, x[x1 + c]);
                a10 = w0.fma(b, a10);
                a11 = w1.fma(b, a11);
                a12 = w2.fma(b, a12);
                a13 = w3.fma(b, a13);
                b = FloatVector.broadcast(Simd.F, x[x2 + c]);
                a20 = w0.fma(b, a20);
                a21 = w1.fma(b, a21);
                a22 = w2.fma(b, a22);
                a23 = w3.fma(b, a23);
                b = FloatVector.broadcast(Simd.F, x[x3 + c]);
                a30 = w0.fma(b, a30);
                a31 = w1.fma(b, a31);
                a32 = w2.fma(b, a32);
                a33 = w3.fma(b, a33);
            }
        }
        a00.intoArray(w, acc);
        a01.intoArray(w, acc + FL);
        a02.intoArray(w, acc + 2 * FL);
        a03.intoArray(w, acc + 3 * FL);
        a10.intoArray(w, acc + TILE_ROWS);
        a11.intoArray(w, acc + TILE_ROWS + FL);
        a12.intoArray(w, acc + TILE_ROWS + 2 * FL);
        a13.intoArray(w, acc + TILE_ROWS + 3 * FL);
        a20.intoArray(w, acc + 2 * TILE_ROWS);
        a21.intoArray(w, acc + 2 * TILE_ROWS + FL);
        a22.intoArray(w, acc + 2 * TILE_ROWS + 2 * FL);
        a23.intoArray(w, acc + 2 * TILE_ROWS + 3 * FL);
        a30.intoArray(w, acc + 3 * TILE_ROWS);
        a31.intoArray(w, acc + 3 * TILE_ROWS + FL);
        a32.intoArray(w, acc + 3 * TILE_ROWS + 2 * FL);
        a33.intoArray(w, acc + 3 * TILE_ROWS + 3 * FL);
    }

    private void copyFloats(int r, int c0, int c1, float[] scratch, int lane) {
        long a = floatLane(r);
        for (int c = c0; c < c1; c++) {
            FloatVector.fromMemorySegment(Simd.F, data, a + c * COLUMN_FLOAT_BYTES, ByteOrder.LITTLE_ENDIAN)
                    .intoArray(scratch, (c - c0) * TILE_ROWS + lane);
        }
    }

    /**
     * Columns {@code [c0, c1)} of tokens {@code t0..t3} (repeats allowed past the batch's end)
     * times the four row vectors of the decoded block, added to the partial sums at
     * {@code w[acc ..]} ({@code TOKEN_TILE} rows of {@code TILE_ROWS} floats).
     */
    private void blockFourTokens(float[] w, float[] x, int t0, int t1, int t2, int t3, int c0, int c1, int acc) {
        FloatVector a00 = FloatVector.fromArray(Simd.F, w, acc);
        FloatVector a01 = FloatVector.fromArray(Simd.F, w, acc + FL);
        FloatVector a02 = FloatVector.fromArray(Simd.F, w, acc + 2 * FL);
        FloatVector a03 = FloatVector.fromArray(Simd.F, w, acc + 3 * FL);
        FloatVector a10 = FloatVector.fromArray(Simd.F, w, acc + TILE_ROWS);
        FloatVector a11 = FloatVector.fromArray(Simd.F, w, acc + TILE_ROWS + FL);
        FloatVector a12 = FloatVector.fromArray(Simd.F, w, acc + TILE_ROWS + 2 * FL);
        FloatVector a13 = FloatVector.fromArray(Simd.F, w, acc + TILE_ROWS + 3 * FL);
        FloatVector a20 = FloatVector.fromArray(Simd.F, w, acc + 2 * TILE_ROWS);
        FloatVector a21 = FloatVector.fromArray(Simd.F, w, acc + 2 * TILE_ROWS + FL);
        FloatVector a22 = FloatVector.fromArray(Simd.F, w, acc + 2 * TILE_ROWS + 2 * FL);
        FloatVector a23 = FloatVector.fromArray(Simd.F, w, acc + 2 * TILE_ROWS + 3 * FL);
        FloatVector a30 = FloatVector.fromArray(Simd.F, w, acc + 3 * TILE_ROWS);
        FloatVector a31 = FloatVector.fromArray(Simd.F, w, acc + 3 * TILE_ROWS + FL);
        FloatVector a32 = FloatVector.fromArray(Simd.F, w, acc + 3 * TILE_ROWS + 2 * FL);
        FloatVector a33 = FloatVector.fromArray(Simd.F, w, acc + 3 * TILE_ROWS + 3 * FL);
        int x0 = t0 * cols;
        int x1 = t1 * cols;
        int x2 = t2 * cols;
        int x3 = t3 * cols;
        for (int c = c0, wo = 0; c < c1; c++, wo += TILE_ROWS) {
            FloatVector w0 = FloatVector.fromArray(Simd.F, w, wo);
            FloatVector w1 = FloatVector.fromArray(Simd.F, w, wo + FL);
            FloatVector w2 = FloatVector.fromArray(Simd.F, w, wo + 2 * FL);
            FloatVector w3 = FloatVector.fromArray(Simd.F, w, wo + 3 * FL);
            FloatVector b = FloatVector.broadcast(Simd.F, x[x0 + c]);
            a00 = w0.fma(b, a00);
            a01 = w1.fma(b, a01);
            a02 = w2.fma(b, a02);
            a03 = w3.fma(b, a03);
            b = FloatVector.broadcast(Simd.F, x[x1 + c]);
            a10 = w0.fma(b, a10);
            a11 = w1.fma(b, a11);
            a12 = w2.fma(b, a12);
            a13 = w3.fma(b, a13);
            b = FloatVector.broadcast(Simd.F, x[x2 + c]);
            a20 = w0.fma(b, a20);
            a21 = w1.fma(b, a21);
            a22 = w2.fma(b, a22);
            a23 = w3.fma(b, a23);
            b = FloatVector.broadcast(Simd.F, x[x3 + c]);
            a30 = w0.fma(b, a30);
            a31 = w1.fma(b, a31);
            a32 = w2.fma(b, a32);
            a33 = w3.fma(b, a33);
        }
        a00.intoArray(w, acc);
        a01.intoArray(w, acc + FL);
        a02.intoArray(w, acc + 2 * FL);
        a03.intoArray(w, acc + 3 * FL);
        a10.intoArray(w, acc + TILE_ROWS);
        a11.intoArray(w, acc + TILE_ROWS + FL);
        a12.intoArray(w, acc + TILE_ROWS + 2 * FL);
        a13.intoArray(w, acc + TILE_ROWS + 3 * FL);
        a20.intoArray(w, acc + 2 * TILE_ROWS);
        a21.intoArray(w, acc + 2 * TILE_ROWS + FL);
        a22.intoArray(w, acc + 2 * TILE_ROWS + 2 * FL);
        a23.intoArray(w, acc + 2 * TILE_ROWS + 3 * FL);
        a30.intoArray(w, acc + 3 * TILE_ROWS);
        a31.intoArray(w, acc + 3 * TILE_ROWS + FL);
        a32.intoArray(w, acc + 3 * TILE_ROWS + 2 * FL);
        a33.intoArray(w, acc + 3 * TILE_ROWS + 3 * FL);
    }

    /**
     * {@link #blockFourTokens} for a tile's first two row vectors only (a half tile at the end of a
     * range): eight accumulators, enough to keep both FMA ports busy. Every lane sums in the same
     * order as in the whole-tile kernel, so a row's result does not depend on how rows were split.
     */
    private void blockFourTokensTwoVectors(float[] w, float[] x, int t0, int t1, int t2, int t3, int c0, int c1, int acc) {
        FloatVector a00 = FloatVector.fromArray(Simd.F, w, acc);
        FloatVector a01 = FloatVector.fromArray(Simd.F, w, acc + FL);
        FloatVector a10 = FloatVector.fromArray(Simd.F, w, acc + TILE_ROWS);
        FloatVector a11 = FloatVector.fromArray(Simd.F, w, acc + TILE_ROWS + FL);
        FloatVector a20 = FloatVector.fromArray(Simd.F, w, acc + 2 * TILE_ROWS);
        FloatVector a21 = FloatVector.fromArray(Simd.F, w, acc + 2 * TILE_ROWS + FL);
        FloatVector a30 = FloatVector.fromArray(Simd.F, w, acc + 3 * TILE_ROWS);
        FloatVector a31 = FloatVector.fromArray(Simd.F, w, acc + 3 * TILE_ROWS + FL);
        int x0 = t0 * cols;
        int x1 = t1 * cols;
        int x2 = t2 * cols;
        int x3 = t3 * cols;
        for (int c = c0, wo = 0; c < c1; c++, wo += TILE_ROWS) {
            FloatVector w0 = FloatVector.fromArray(Simd.F, w, wo);
            FloatVector w1 = FloatVector.fromArray(Simd.F, w, wo + FL);
            FloatVector b = FloatVector.broadcast(Simd.F, x[x0 + c]);
            a00 = w0.fma(b, a00);
            a01 = w1.fma(b, a01);
            b = FloatVector.broadcast(Simd.F, x[x1 + c]);
            a10 = w0.fma(b, a10);
            a11 = w1.fma(b, a11);
            b = FloatVector.broadcast(Simd.F, x[x2 + c]);
            a20 = w0.fma(b, a20);
            a21 = w1.fma(b, a21);
            b = FloatVector.broadcast(Simd.F, x[x3 + c]);
            a30 = w0.fma(b, a30);
            a31 = w1.fma(b, a31);
        }
        a00.intoArray(w, acc);
        a01.intoArray(w, acc + FL);
        a10.intoArray(w, acc + TILE_ROWS);
        a11.intoArray(w, acc + TILE_ROWS + FL);
        a20.intoArray(w, acc + 2 * TILE_ROWS);
        a21.intoArray(w, acc + 2 * TILE_ROWS + FL);
        a30.intoArray(w, acc + 3 * TILE_ROWS);
        a31.intoArray(w, acc + 3 * TILE_ROWS + FL);
    }

    /**
     * {@link #blockFourTokensTwoVectors} for eight tokens {@code t0 .. t0+7} (all inside the batch):
     * sixteen accumulators, so each column's two weight loads and the loop's own work are shared by
     * sixteen FMAs, as in the whole-tile kernel, instead of eight.
     */
    private void blockEightTokensTwoVectors(float[] w, float[] x, int t0, int c0, int c1, int acc) {
        FloatVector a00 = FloatVector.fromArray(Simd.F, w, acc);
        FloatVector a01 = FloatVector.fromArray(Simd.F, w, acc + FL);
        FloatVector a10 = FloatVector.fromArray(Simd.F, w, acc + TILE_ROWS);
        FloatVector a11 = FloatVector.fromArray(Simd.F, w, acc + TILE_ROWS + FL);
        FloatVector a20 = FloatVector.fromArray(Simd.F, w, acc + 2 * TILE_ROWS);
        FloatVector a21 = FloatVector.fromArray(Simd.F, w, acc + 2 * TILE_ROWS + FL);
        FloatVector a30 = FloatVector.fromArray(Simd.F, w, acc + 3 * TILE_ROWS);
        FloatVector a31 = FloatVector.fromArray(Simd.F, w, acc + 3 * TILE_ROWS + FL);
        FloatVector a40 = FloatVector.fromArray(Simd.F, w, acc + 4 * TILE_ROWS);
        FloatVector a41 = FloatVector.fromArray(Simd.F, w, acc + 4 * TILE_ROWS + FL);
        FloatVector a50 = FloatVector.fromArray(Simd.F, w, acc + 5 * TILE_ROWS);
        FloatVector a51 = FloatVector.fromArray(Simd.F, w, acc + 5 * TILE_ROWS + FL);
        FloatVector a60 = FloatVector.fromArray(Simd.F, w, acc + 6 * TILE_ROWS);
        FloatVector a61 = FloatVector.fromArray(Simd.F, w, acc + 6 * TILE_ROWS + FL);
        FloatVector a70 = FloatVector.fromArray(Simd.F, w, acc + 7 * TILE_ROWS);
        FloatVector a71 = FloatVector.fromArray(Simd.F, w, acc + 7 * TILE_ROWS + FL);
        int x0 = t0 * cols;
        int x1 = (t0 + 1) * cols;
        int x2 = (t0 + 2) * cols;
        int x3 = (t0 + 3) * cols;
        int x4 = (t0 + 4) * cols;
        int x5 = (t0 + 5) * cols;
        int x6 = (t0 + 6) * cols;
        int x7 = (t0 + 7) * cols;
        for (int c = c0, wo = 0; c < c1; c++, wo += TILE_ROWS) {
            FloatVector w0 = FloatVector.fromArray(Simd.F, w, wo);
            FloatVector w1 = FloatVector.fromArray(Simd.F, w, wo + FL);
            FloatVector b = FloatVector.broadcast(Simd.F, x[x0 + c]);
            a00 = w0.fma(b, a00);
            a01 = w1.fma(b, a01);
            b = FloatVector.broadcast(Simd.F, x[x1 + c]);
            a10 = w0.fma(b, a10);
            a11 = w1.fma(b, a11);
            b = FloatVector.broadcast(Simd.F, x[x2 + c]);
            a20 = w0.fma(b, a20);
            a21 = w1.fma(b, a21);
            b = FloatVector.broadcast(Simd.F, x[x3 + c]);
            a30 = w0.fma(b, a30);
            a31 = w1.fma(b, a31);
            b = FloatVector.broadcast(Simd.F, x[x4 + c]);
            a40 = w0.fma(b, a40);
            a41 = w1.fma(b, a41);
            b = FloatVector.broadcast(Simd.F, x[x5 + c]);
            a50 = w0.fma(b, a50);
            a51 = w1.fma(b, a51);
            b = FloatVector.broadcast(Simd.F, x[x6 + c]);
            a60 = w0.fma(b, a60);
            a61 = w1.fma(b, a61);
            b = FloatVector.broadcast(Simd.F, x[x7 + c]);
            a70 = w0.fma(b, a70);
            a71 = w1.fma(b, a71);
        }
        a00.intoArray(w, acc);
        a01.intoArray(w, acc + FL);
        a10.intoArray(w, acc + TILE_ROWS);
        a11.intoArray(w, acc + TILE_ROWS + FL);
        a20.intoArray(w, acc + 2 * TILE_ROWS);
        a21.intoArray(w, acc + 2 * TILE_ROWS + FL);
        a30.intoArray(w, acc + 3 * TILE_ROWS);
        a31.intoArray(w, acc + 3 * TILE_ROWS + FL);
        a40.intoArray(w, acc + 4 * TILE_ROWS);
        a41.intoArray(w, acc + 4 * TILE_ROWS + FL);
        a50.intoArray(w, acc + 5 * TILE_ROWS);
        a51.intoArray(w, acc + 5 * TILE_ROWS + FL);
        a60.intoArray(w, acc + 6 * TILE_ROWS);
        a61.intoArray(w, acc + 6 * TILE_ROWS + FL);
        a70.intoArray(w, acc + 7 * TILE_ROWS);
        a71.intoArray(w, acc + 7 * TILE_ROWS + FL);
    }

    // ---- the scalar twin: the same sums, one fused multiply-add per column ----

    void multiplyScalar(float[] x, int n, float[] out, int outOff, int outStride, int r0, int r1) {
        for (int r = r0; r < r1; r++) {
            for (int t = 0; t < n; t++) {
                float acc = 0f;
                int xo = t * cols;
                for (int c = 0; c < cols; c++) {
                    acc = Math.fma(weight(r, c), x[xo + c], acc);
                }
                out[outOff + t * outStride + r] = acc;
            }
        }
    }
}
