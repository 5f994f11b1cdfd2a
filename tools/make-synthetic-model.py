#!/usr/bin/env python3
"""Writes a llama-architecture GGUF with random weights and a real model's vocabulary, for speed
measurements at sizes the test models do not reach (stories15M's 17 MB of Q8_0 weights sit in this
machine's L3 cache, so its single-sequence decode is bound by arithmetic, not by memory).

    python3 tools/make-synthetic-model.py SOURCE.gguf OUT.gguf DIM FFN LAYERS HEADS

Matrices are Q8_0 (normal(0, 1/sqrt(fan_in)) weights, quantized with scale max|w|/127 and rounded codes, as ggml does),
norms F32 ones; the tokenizer metadata is copied from SOURCE (e.g. stories15M-q8_0.gguf, whose
32000-token vocabulary sizes the embedding and output matrices). The weights are seeded, so the
same arguments give the same file. The text it writes is not language: use it for speed only.
Needs numpy (Debian: python3-numpy). Example, about 285M parameters (343 MB):

    python3 tools/make-synthetic-model.py ../shared/models/stories15M-q8_0.gguf /tmp/synth-270m-q8_0.gguf 1024 2816 20 16
"""
import struct
import sys

import numpy as np

SCALAR = {0: '<B', 1: '<b', 2: '<H', 3: '<h', 4: '<I', 5: '<i', 6: '<f', 7: '<?', 10: '<Q', 11: '<q', 12: '<d'}
F32, Q8_0 = 0, 8
ALIGN = 32


def read_value(f, t):
    if t in SCALAR:
        fmt = SCALAR[t]
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]
    if t == 8:
        (n,) = struct.unpack('<Q', f.read(8))
        return f.read(n)
    if t == 9:
        et, n = struct.unpack('<IQ', f.read(12))
        return et, [read_value(f, et) for _ in range(n)]
    raise ValueError(f'unknown GGUF value type {t}')


def write_value(t, v):
    if t in SCALAR:
        return struct.pack(SCALAR[t], v)
    if t == 8:
        return struct.pack('<Q', len(v)) + v
    et, items = v
    return struct.pack('<IQ', et, len(items)) + b''.join(write_value(et, x) for x in items)


def read_metadata(path):
    with open(path, 'rb') as f:
        if f.read(4) != b'GGUF':
            sys.exit(f'{path}: not a GGUF file')
        _version, tensors, count = struct.unpack('<IQQ', f.read(20))
        kvs = []
        for _ in range(count):
            key = read_value(f, 8).decode()
            (t,) = struct.unpack('<I', f.read(4))
            kvs.append((key, t, read_value(f, t)))
        vocab = None
        for _ in range(tensors):
            name = read_value(f, 8).decode()
            (nd,) = struct.unpack('<I', f.read(4))
            dims = struct.unpack(f'<{nd}Q', f.read(8 * nd))
            f.read(12)
            if name == 'token_embd.weight':
                vocab = dims[1]
        return kvs, vocab


def main():
    if len(sys.argv) != 7:
        sys.exit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    dim, ffn, layers, heads = map(int, sys.argv[3:7])
    if dim % heads or dim % 32 or ffn % 32:
        sys.exit('DIM must be a multiple of HEADS and of 32, FFN a multiple of 32')
    kvs, vocab = read_metadata(src)
    override = {
        'llama.embedding_length': dim, 'llama.feed_forward_length': ffn, 'llama.block_count': layers,
        'llama.attention.head_count': heads, 'llama.attention.head_count_kv': heads,
        'llama.rope.dimension_count': dim // heads, 'llama.context_length': 512, 'general.name': b'synthetic',
    }
    metadata = b''.join(write_value(8, k.encode()) + struct.pack('<I', t) + write_value(t, override.get(k, v))
                        for k, t, v in kvs)
    specs = [('token_embd.weight', (dim, vocab), Q8_0), ('output_norm.weight', (dim,), F32),
             ('output.weight', (dim, vocab), Q8_0)]
    for layer in range(layers):
        p = f'blk.{layer}.'
        specs += [(p + 'attn_norm.weight', (dim,), F32), (p + 'attn_q.weight', (dim, dim), Q8_0),
                  (p + 'attn_k.weight', (dim, dim), Q8_0), (p + 'attn_v.weight', (dim, dim), Q8_0),
                  (p + 'attn_output.weight', (dim, dim), Q8_0), (p + 'ffn_norm.weight', (dim,), F32),
                  (p + 'ffn_gate.weight', (dim, ffn), Q8_0), (p + 'ffn_up.weight', (dim, ffn), Q8_0),
                  (p + 'ffn_down.weight', (ffn, dim), Q8_0)]
    pad = lambda n: (n + ALIGN - 1) // ALIGN * ALIGN
    infos, offset = b'', 0
    for name, dims, t in specs:
        infos += (write_value(8, name.encode()) + struct.pack('<I', len(dims)) + struct.pack(f'<{len(dims)}Q', *dims)
                  + struct.pack('<IQ', t, offset))
        n = int(np.prod(dims))
        offset = pad(offset + (4 * n if t == F32 else n // 32 * 34))
    rng = np.random.default_rng(7)
    with open(out, 'wb') as f:
        f.write(b'GGUF' + struct.pack('<IQQ', 3, len(specs), len(kvs)) + metadata + infos)
        f.write(b'\0' * (pad(f.tell()) - f.tell()))
        for name, dims, t in specs:
            if t == F32:
                f.write(np.ones(dims[0], np.float32).tobytes())
            else:
                x = (rng.standard_normal(int(np.prod(dims)), dtype=np.float32) / np.sqrt(dims[0])).reshape(-1, 32)
                d = np.abs(x).max(axis=1) / 127
                q = np.round(x / np.where(d == 0, 1, d)[:, None]).astype(np.int8)
                blocks = np.empty(len(x), dtype=[('d', '<f2'), ('q', 'i1', 32)])
                blocks['d'] = d.astype(np.float16)
                blocks['q'] = q
                f.write(blocks.tobytes())
            f.write(b'\0' * (pad(f.tell()) - f.tell()))


if __name__ == '__main__':
    main()
