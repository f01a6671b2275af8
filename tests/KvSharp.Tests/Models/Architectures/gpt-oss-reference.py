#!/usr/bin/env python3
"""Independent pure-Python reference of OpenAI's gpt-oss forward pass, reading a GGUF file.

A port of OpenAI's reference implementation (gpt_oss/torch/model.py: RMSNorm, RotaryEmbedding with
_apply_rotary_emb, sdpa with attention sinks and the sliding-window mask, AttentionBlock, MLPBlock with
top-k softmax routing and the clamped SwiGLU) over llama.cpp's GGUF tensor layout, computed entirely in
float64 with nothing but the Python standard library (no numpy / torch).

Usage:
    python3 gpt-oss-reference.py MODEL.gguf PROMPT_IDS_FILE OUT_PREFIX [--greedy N] [--q8-expert-inputs]

The golden files gpt-oss.F32.* and gpt-oss.MXFP4.* beside this script are its output for the files
GptOssVariants.cs writes (their SHA-256 is in the .txt), the MXFP4 one with --q8-expert-inputs, over
../shared/fixtures/prompt.ids.txt.

Writes
    OUT_PREFIX.f32  logits (little-endian float32, n_vocab floats per row) of the prompt at positions
                    0, 8, 16, ... and the last one (positions = list(range(0, n, 8)) + ([n-1] if (n-1) % 8 else []))
    OUT_PREFIX.txt  description, sha256 of the GGUF, positions, and N (default 32) greedy token ids.

Supported tensor types: F32, F16, Q8_0, MXFP4. Anything else is refused.
YaRN (which the real gpt-oss checkpoints use) follows OpenAI's formulas with the correction range rounded as ggml
rounds it (floor / ceil, clamped), as GGUF files are run; --openai-yarn keeps it unrounded as OpenAI's reference does.
"""

import argparse
import array
import hashlib
import math
import mmap
import operator
import os
import struct
import sys
import time

DESCRIPTION = ("independent pure-Python port of OpenAI's gpt-oss reference (gpt_oss/torch/model.py) "
               "over the GGUF tensors, float64")

_mul = operator.mul
_exp = math.exp


class GGUFError(Exception):
    pass


class ModelError(Exception):
    pass


# --------------------------------------------------------------------------------------------------
# GGUF reader
# --------------------------------------------------------------------------------------------------

GGML_TYPE_F32 = 0
GGML_TYPE_F16 = 1
GGML_TYPE_Q8_0 = 8
GGML_TYPE_MXFP4 = 39

# type -> (name, block size in values, block size in bytes) for the supported types
SUPPORTED_TYPES = {
    GGML_TYPE_F32: ("F32", 1, 4),
    GGML_TYPE_F16: ("F16", 1, 2),
    GGML_TYPE_Q8_0: ("Q8_0", 32, 34),
    GGML_TYPE_MXFP4: ("MXFP4", 32, 17),
}

# names only, for error messages
GGML_TYPE_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
    10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
    17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS",
    24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16",
    34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
}

# GGUF metadata value types -> struct format (scalars)
_GGUF_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "B", 10: "Q", 11: "q", 12: "d"}
GGUF_TYPE_STRING = 8
GGUF_TYPE_ARRAY = 9


class _Cursor:
    __slots__ = ("buf", "pos", "size")

    def __init__(self, buf):
        self.buf = buf
        self.pos = 0
        self.size = len(buf)

    def _need(self, n):
        if self.pos + n > self.size:
            raise GGUFError("truncated GGUF header (wanted %d bytes at offset %d, file has %d)"
                            % (n, self.pos, self.size))

    def unpack(self, fmt):
        n = struct.calcsize("<" + fmt)
        self._need(n)
        v = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += n
        return v

    def u32(self):
        return self.unpack("I")[0]

    def u64(self):
        return self.unpack("Q")[0]

    def string(self):
        n = self.u64()
        self._need(n)
        s = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return s.decode("utf-8", errors="replace")

    def value(self, vtype):
        if vtype in _GGUF_SCALAR:
            v = self.unpack(_GGUF_SCALAR[vtype])[0]
            return bool(v) if vtype == 7 else v
        if vtype == GGUF_TYPE_STRING:
            return self.string()
        if vtype == GGUF_TYPE_ARRAY:
            etype = self.u32()
            count = self.u64()
            if etype in _GGUF_SCALAR:
                fmt = "%d%s" % (count, _GGUF_SCALAR[etype])
                vals = list(self.unpack(fmt)) if count else []
                return [bool(v) for v in vals] if etype == 7 else vals
            return [self.value(etype) for _ in range(count)]
        raise GGUFError("unknown GGUF metadata value type %d at offset %d" % (vtype, self.pos))


class TensorInfo:
    __slots__ = ("name", "dims", "ggml_type", "offset")

    def __init__(self, name, dims, ggml_type, offset):
        self.name = name
        self.dims = dims          # ne0 first (ne0 = contiguous dimension)
        self.ggml_type = ggml_type
        self.offset = offset      # absolute offset in the file

    def type_name(self):
        return GGML_TYPE_NAMES.get(self.ggml_type, "type %d" % self.ggml_type)


class GGUFFile:
    def __init__(self, path):
        self.path = path
        self._f = open(path, "rb")
        size = os.fstat(self._f.fileno()).st_size
        if size < 24:
            raise GGUFError("%s: too small to be a GGUF file" % path)
        self.buf = mmap.mmap(self._f.fileno(), 0, access=mmap.ACCESS_READ)
        c = _Cursor(self.buf)
        magic = bytes(self.buf[0:4])
        if magic != b"GGUF":
            raise GGUFError("%s: bad magic %r (not a GGUF file)" % (path, magic))
        c.pos = 4
        self.version = c.u32()
        if self.version not in (2, 3):
            raise GGUFError("%s: unsupported GGUF version %d" % (path, self.version))
        n_tensors = c.u64()
        n_kv = c.u64()
        self.kv = {}
        for _ in range(n_kv):
            key = c.string()
            vtype = c.u32()
            self.kv[key] = c.value(vtype)
        infos = []
        for _ in range(n_tensors):
            name = c.string()
            n_dims = c.u32()
            dims = [c.u64() for _ in range(n_dims)]
            ggml_type = c.u32()
            offset = c.u64()
            infos.append((name, dims, ggml_type, offset))
        alignment = int(self.kv.get("general.alignment", 32))
        if alignment <= 0:
            raise GGUFError("bad general.alignment %d" % alignment)
        self.data_start = (c.pos + alignment - 1) // alignment * alignment
        self.tensors = {}
        for name, dims, ggml_type, offset in infos:
            if name in self.tensors:
                raise GGUFError("duplicate tensor name %s" % name)
            self.tensors[name] = TensorInfo(name, dims, ggml_type, self.data_start + offset)
        self.size = size

    def close(self):
        try:
            self.buf.close()
        finally:
            self._f.close()

    # ---- tensor access -------------------------------------------------------------------------

    def info(self, name):
        t = self.tensors.get(name)
        if t is None:
            raise ModelError("tensor %s not found in %s" % (name, self.path))
        return t

    def row_bytes(self, t):
        ty = SUPPORTED_TYPES.get(t.ggml_type)
        if ty is None:
            raise GGUFError("tensor %s has ggml type %s (%d), which this reference does not support "
                            "(supported: F32, F16, Q8_0, MXFP4)" % (t.name, t.type_name(), t.ggml_type))
        _, bs, bb = ty
        ne0 = t.dims[0] if t.dims else 1
        if ne0 % bs:
            raise GGUFError("tensor %s: ne0=%d is not a multiple of the %s block size %d"
                            % (t.name, ne0, ty[0], bs))
        return ne0 // bs * bb

    def rows(self, t, first_row, n_rows):
        """Dequantize n_rows rows (each ne0 values) starting at row index first_row -> list of lists."""
        rb = self.row_bytes(t)
        ne0 = t.dims[0] if t.dims else 1
        total_rows = 1
        for d in t.dims[1:]:
            total_rows *= d
        if first_row + n_rows > total_rows:
            raise GGUFError("tensor %s: row range out of bounds" % t.name)
        start = t.offset + first_row * rb
        end = t.offset + (first_row + n_rows) * rb
        if end > self.size:
            raise GGUFError("tensor %s: data runs past the end of the file (%d > %d)"
                            % (t.name, end, self.size))
        return [dequantize(self.buf, start + r * rb, t.ggml_type, ne0) for r in range(n_rows)]


# --------------------------------------------------------------------------------------------------
# Dequantization
# --------------------------------------------------------------------------------------------------

KVALUES_MXFP4 = (0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12)
_MXFP4_LO = tuple(KVALUES_MXFP4[b & 15] for b in range(256))
_MXFP4_HI = tuple(KVALUES_MXFP4[b >> 4] for b in range(256))


def e8m0_to_fp32_half(e):
    """ggml's GGML_E8M0_TO_FP32_HALF: 2^(e-128), built bit-exactly as a float32."""
    if not 0 <= e <= 255:
        raise ValueError("E8M0 exponent out of range: %r" % (e,))
    bits = (0x00200000 << e) if e < 2 else ((e - 1) << 23)
    return struct.unpack("<f", struct.pack("<I", bits))[0]


_E8M0_HALF = tuple(e8m0_to_fp32_half(e) for e in range(256))
_BIG_ENDIAN_HOST = sys.byteorder == "big"


def dequantize(buf, off, ggml_type, n):
    """Dequantize n values of ggml_type starting at byte offset off of buf -> list of floats."""
    if ggml_type == GGML_TYPE_F32:
        a = array.array("f")
        a.frombytes(buf[off:off + 4 * n])
        if _BIG_ENDIAN_HOST:
            a.byteswap()
        return a.tolist()
    if ggml_type == GGML_TYPE_F16:
        return list(struct.unpack_from("<%de" % n, buf, off))
    if ggml_type == GGML_TYPE_Q8_0:
        if n % 32:
            raise GGUFError("Q8_0 row length %d not a multiple of 32" % n)
        out = []
        unpack = struct.unpack_from
        for b in range(n // 32):
            o = off + 34 * b
            d = unpack("<e", buf, o)[0]
            qs = unpack("<32b", buf, o + 2)
            out.extend([d * q for q in qs])
        return out
    if ggml_type == GGML_TYPE_MXFP4:
        if n % 32:
            raise GGUFError("MXFP4 row length %d not a multiple of 32" % n)
        out = []
        lo, hi, e8 = _MXFP4_LO, _MXFP4_HI, _E8M0_HALF
        for b in range(n // 32):
            o = off + 17 * b
            d = e8[buf[o]]
            qs = buf[o + 1:o + 17]
            out.extend([lo[q] * d for q in qs])
            out.extend([hi[q] * d for q in qs])
        return out
    raise GGUFError("unsupported ggml type %s (%d); supported: F32, F16, Q8_0, MXFP4"
                    % (GGML_TYPE_NAMES.get(ggml_type, "?"), ggml_type))


# --------------------------------------------------------------------------------------------------
# Math helpers (float64)
# --------------------------------------------------------------------------------------------------

def matvec(W, x, b=None):
    """y = W x (+ b); W is a list of rows."""
    if b is None:
        return [sum(map(_mul, r, x)) for r in W]
    return [sum(map(_mul, r, x)) + bi for r, bi in zip(W, b)]


def _f32(v):
    return struct.unpack("<f", struct.pack("<f", v))[0]


def q8_0_roundtrip(x):
    """x as ggml's CPU backend hands it to a dot product with Q8_0-typed activations (the vec_dot_type of MXFP4 and
    Q8_0 weights): per block of 32, d = amax / 127 stored as fp16, q = round-half-even(x * 127 / amax) in float32;
    returns fp16(d) * q for each element."""
    out = []
    for b in range(0, len(x), 32):
        blk = [_f32(v) for v in x[b:b + 32]]
        amax = max(abs(v) for v in blk)
        d = _f32(amax / 127.0)
        ident = _f32(127.0 / amax) if amax != 0.0 else 0.0
        dh = struct.unpack("<e", struct.pack("<e", d))[0]
        out.extend(dh * round(_f32(v * ident)) for v in blk)
    return out


def rmsnorm(x, w, eps):
    """Reference RMSNorm: t * rsqrt(mean(t^2) + eps) * scale."""
    ms = sum(map(_mul, x, x)) / len(x)
    s = 1.0 / math.sqrt(ms + eps)
    return [(v * s) * wi for v, wi in zip(x, w)]


def sigmoid(z):
    if z >= 0.0:
        return 1.0 / (1.0 + _exp(-z))
    e = _exp(z)
    return e / (1.0 + e)


def select_experts(logits, k):
    """Top-k experts by router logit, descending; exact ties -> lower index first."""
    return sorted(range(len(logits)), key=lambda e: (-logits[e], e))[:k]


def softmax(vals):
    m = max(vals)
    ex = [_exp(v - m) for v in vals]
    s = sum(ex)
    return [e / s for e in ex]


def argmax(v):
    """First index of the maximum."""
    best = 0
    bv = v[0]
    for i in range(1, len(v)):
        if v[i] > bv:
            bv = v[i]
            best = i
    return best


# --------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------

class _ExpertStack:
    """Lazily dequantized 3-D expert tensor [ne0, ne1, n_expert]: expert e -> ne1 rows of ne0.
    Each expert matrix is dequantized once, on first use, and cached."""

    def __init__(self, gguf, t):
        self.gguf = gguf
        self.t = t
        self.n_rows = t.dims[1]
        self.cache = {}
        gguf.row_bytes(t)  # type / block checks now, not at first use

    def __getitem__(self, e):
        m = self.cache.get(e)
        if m is None:
            m = self.gguf.rows(self.t, e * self.n_rows, self.n_rows)
            self.cache[e] = m
        return m


class _Layer:
    pass


class GptOss:
    """gpt-oss forward pass. forward_token() uses an incremental KV cache; forward_full() recomputes
    the whole sequence from scratch, layer by layer, with the reference's explicit mask matrix."""

    def __init__(self, path, verbose=False, ggml_yarn=True):
        self.ggml_yarn = ggml_yarn
        self.gguf = g = GGUFFile(path)
        kv = g.kv
        self.verbose = verbose
        self.q8_expert_inputs = False
        arch = kv.get("general.architecture")
        if arch != "gpt-oss":
            raise ModelError("general.architecture is %r, expected 'gpt-oss'" % (arch,))
        A = arch + "."

        def need(key):
            if A + key not in kv:
                raise ModelError("missing metadata key %s%s" % (A, key))
            return kv[A + key]

        scaling = kv.get(A + "rope.scaling.type")
        if scaling is not None and str(scaling) not in ("none", "yarn"):
            raise ModelError("%srope.scaling.type = %r: only unscaled RoPE and YaRN are supported in this reference"
                             % (A, scaling))
        self.yarn = None
        if scaling is not None and str(scaling) == "yarn":
            # OpenAI's RotaryEmbedding(scaling_factor, initial_context_length, ntk_alpha = beta_slow, ntk_beta = beta_fast)
            self.yarn = (float(need("rope.scaling.factor")),
                         float(kv.get(A + "rope.scaling.original_context_length", kv.get(A + "context_length"))),
                         float(kv.get(A + "rope.scaling.yarn_beta_slow", 1.0)),
                         float(kv.get(A + "rope.scaling.yarn_beta_fast", 32.0)))

        self.n_layer = int(need("block_count"))
        self.n_embd = E = int(need("embedding_length"))
        self.n_head = H = int(need("attention.head_count"))
        self.n_head_kv = Hkv = int(need("attention.head_count_kv"))
        if A + "attention.key_length" in kv:
            self.head_dim = D = int(kv[A + "attention.key_length"])
        else:
            if E % H:
                raise ModelError("embedding_length %d not divisible by head_count %d" % (E, H))
            self.head_dim = D = E // H
        vlen = kv.get(A + "attention.value_length")
        if vlen is not None and int(vlen) != D:
            raise ModelError("attention.value_length %d != key_length %d: not supported" % (vlen, D))
        rdim = kv.get(A + "rope.dimension_count")
        if rdim is not None and int(rdim) != D:
            raise ModelError("rope.dimension_count %d != head_dim %d: partial rotary not supported"
                             % (rdim, D))
        if D % 2:
            raise ModelError("head_dim %d is odd" % D)
        if H % Hkv:
            raise ModelError("head_count %d not a multiple of head_count_kv %d" % (H, Hkv))
        self.q_mult = H // Hkv
        self.rope_base = float(need("rope.freq_base"))
        self.eps = float(need("attention.layer_norm_rms_epsilon"))
        self.n_expert = X = int(need("expert_count"))
        self.n_expert_used = int(need("expert_used_count"))
        if not 0 < self.n_expert_used <= X:
            raise ModelError("expert_used_count %d not in 1..expert_count %d" % (self.n_expert_used, X))
        self.window = int(need("attention.sliding_window"))
        pattern = kv.get(A + "attention.sliding_window_pattern", 2)
        if isinstance(pattern, list):
            # per-layer flags (true = sliding-window layer)
            if len(pattern) != self.n_layer:
                raise ModelError("sliding_window_pattern array has %d entries, block_count is %d"
                                 % (len(pattern), self.n_layer))
            self.swa = [bool(p) for p in pattern]
        else:
            pattern = int(pattern)
            # llama.cpp's set_swa_pattern: pattern 0 -> every layer is SWA
            self.swa = [pattern == 0 or (i % pattern < pattern - 1) for i in range(self.n_layer)]
        self.sm_scale = 1.0 / math.sqrt(D)
        self.swiglu_limit = 7.0
        self.swiglu_alpha = 1.702
        half = D // 2
        # reference: inv_freq = 1 / base ** (arange(0, D, 2) / D); angle = pos * inv_freq
        self.inv_freq = [1.0 / (self.rope_base ** ((2 * i) / D)) for i in range(half)]
        self.concentration = 1.0
        if self.yarn is not None and self.yarn[0] > 1.0:
            # _compute_concentration_and_inv_freq: NTK by parts. OpenAI's reference keeps low and high as they are;
            # ggml (llama.cpp, and so the readers of a GGUF file) rounds them outwards (floor, ceil) and clamps them to
            # [0, D - 1]: self.ggml_yarn picks that, the one GGUF files are run with.
            factor, ctx, ntk_alpha, ntk_beta = self.yarn
            low = half * math.log(ctx / (ntk_beta * 2 * math.pi)) / math.log(self.rope_base)
            high = half * math.log(ctx / (ntk_alpha * 2 * math.pi)) / math.log(self.rope_base)
            if self.ggml_yarn:
                low, high = max(0.0, math.floor(low)), min(D - 1.0, math.ceil(high))
            self.concentration = 0.1 * math.log(factor) + 1.0
            freq = [self.rope_base ** ((2 * i) / D) for i in range(half)]
            mask = [1 - min(1.0, max(0.0, (i - low) / max(high - low, 0.001))) for i in range(half)]
            self.inv_freq = [(1.0 / (factor * f)) * (1 - m) + (1.0 / f) * m for f, m in zip(freq, mask)]
        self._cs_cache = {}

        t0 = time.time()
        te = g.info("token_embd.weight")
        if len(te.dims) != 2 or te.dims[0] != E:
            raise ModelError("token_embd.weight has dims %r, expected [%d, n_vocab]" % (te.dims, E))
        self.n_vocab = V = te.dims[1]
        self.tok_embd = self._mat("token_embd.weight", E, V)
        self.layers = []
        for il in range(self.n_layer):
            p = "blk.%d." % il
            L = _Layer()
            L.attn_norm = self._vec(p + "attn_norm.weight", E)
            L.wq = self._mat(p + "attn_q.weight", E, H * D)
            L.bq = self._vec(p + "attn_q.bias", H * D)
            L.wk = self._mat(p + "attn_k.weight", E, Hkv * D)
            L.bk = self._vec(p + "attn_k.bias", Hkv * D)
            L.wv = self._mat(p + "attn_v.weight", E, Hkv * D)
            L.bv = self._vec(p + "attn_v.bias", Hkv * D)
            L.wo = self._mat(p + "attn_output.weight", H * D, E)
            L.bo = self._vec(p + "attn_output.bias", E)
            L.sinks = self._vec(p + "attn_sinks.weight", H)
            L.post_norm = self._vec(p + "post_attention_norm.weight", E)
            L.wr = self._mat(p + "ffn_gate_inp.weight", E, X)
            L.br = self._vec(p + "ffn_gate_inp.bias", X)
            tg = g.info(p + "ffn_gate_exps.weight")
            if len(tg.dims) != 3 or tg.dims[0] != E or tg.dims[2] != X:
                raise ModelError("%s has dims %r, expected [%d, n_ff, %d]" % (tg.name, tg.dims, E, X))
            F = tg.dims[1]
            L.n_ff = F
            L.wgate = self._experts(p + "ffn_gate_exps.weight", E, F, X)
            L.bgate = self._bias2(p + "ffn_gate_exps.bias", F, X)
            L.wup = self._experts(p + "ffn_up_exps.weight", E, F, X)
            L.bup = self._bias2(p + "ffn_up_exps.bias", F, X)
            L.wdown = self._experts(p + "ffn_down_exps.weight", F, E, X)
            L.bdown = self._bias2(p + "ffn_down_exps.bias", E, X)
            self.layers.append(L)
        self.output_norm = self._vec("output_norm.weight", E)
        if "output.weight" in g.tensors:
            self.output = self._mat("output.weight", E, V)
        else:
            if verbose:
                print("note: no output.weight, using tied token_embd.weight", file=sys.stderr)
            self.output = self.tok_embd
        if verbose:
            print("loaded %s: E=%d H=%d Hkv=%d D=%d layers=%d experts=%d used=%d vocab=%d window=%d "
                  "swa=%s base=%g eps=%g (%.1fs)"
                  % (path, E, H, Hkv, D, self.n_layer, X, self.n_expert_used, V, self.window,
                     "".join("S" if s else "F" for s in self.swa), self.rope_base, self.eps,
                     time.time() - t0), file=sys.stderr)

    # ---- tensor loading with shape checks -------------------------------------------------------

    def _check(self, name, dims):
        t = self.gguf.info(name)
        if list(t.dims) != list(dims):
            raise ModelError("tensor %s has dims %r, expected %r" % (name, t.dims, list(dims)))
        return t

    def _mat(self, name, ne0, ne1):
        t = self._check(name, [ne0, ne1])
        return self.gguf.rows(t, 0, ne1)

    def _vec(self, name, n):
        t = self._check(name, [n])
        return self.gguf.rows(t, 0, 1)[0]

    def _bias2(self, name, n, X):
        t = self._check(name, [n, X])
        return self.gguf.rows(t, 0, X)

    def _experts(self, name, ne0, ne1, X):
        t = self._check(name, [ne0, ne1, X])
        return _ExpertStack(self.gguf, t)

    # ---- pieces -----------------------------------------------------------------------------------

    def _cos_sin(self, pos):
        cs = self._cs_cache.get(pos)
        if cs is None:
            ang = [pos * f for f in self.inv_freq]
            c = self.concentration
            cs = ([math.cos(a) * c for a in ang], [math.sin(a) * c for a in ang])
            self._cs_cache[pos] = cs
        return cs

    def rope(self, vec, pos):
        """Reference _apply_rotary_emb (rotate halves / NeoX): x1 = first D/2, x2 = last D/2."""
        cos, sin = self._cos_sin(pos)
        half = self.head_dim // 2
        x1 = vec[:half]
        x2 = vec[half:]
        o1 = [a * c - b * s for a, b, c, s in zip(x1, x2, cos, sin)]
        o2 = [b * c + a * s for a, b, c, s in zip(x1, x2, cos, sin)]
        return o1 + o2

    def window_start(self, il, pos):
        """First key position a query at pos sees in layer il."""
        if self.swa[il] and self.window > 0:
            return max(0, pos - self.window + 1)
        return 0

    def _qkv(self, L, x, pos):
        D = self.head_dim
        t = rmsnorm(x, L.attn_norm, self.eps)
        q = matvec(L.wq, t, L.bq)
        k = matvec(L.wk, t, L.bk)
        v = matvec(L.wv, t, L.bv)
        qh = [self.rope(q[h * D:(h + 1) * D], pos) for h in range(self.n_head)]
        kh = [self.rope(k[g * D:(g + 1) * D], pos) for g in range(self.n_head_kv)]
        vh = [v[g * D:(g + 1) * D] for g in range(self.n_head_kv)]
        return qh, kh, vh

    def attend(self, il, q_heads, keys, vals, start, pos):
        """Attention with a sink for one query position over key positions start..pos.
        keys[j][g] / vals[j][g]: post-rope key / value of KV head g at position j."""
        D = self.head_dim
        sinks = self.layers[il].sinks
        scale = self.sm_scale
        out = []
        rng = range(start, pos + 1)
        for h in range(self.n_head):
            g = h // self.q_mult
            qh = q_heads[h]
            scores = [sum(map(_mul, qh, keys[j][g])) * scale for j in rng]
            sink = sinks[h]
            m = max(max(scores), sink)
            ex = [_exp(s - m) for s in scores]
            denom = sum(ex) + _exp(sink - m)
            acc = [0.0] * D
            for e, j in zip(ex, rng):
                w = e / denom
                acc = [a + w * b for a, b in zip(acc, vals[j][g])]
            out.extend(acc)
        return out

    def mlp(self, L, x):
        """MLPBlock: x + sum_e w_e * (Wdown_e swiglu(Wgate_e t + b, Wup_e t + b) + bdown_e)."""
        t = rmsnorm(x, L.post_norm, self.eps)
        g = matvec(L.wr, t, L.br)
        chosen = select_experts(g, self.n_expert_used)
        weights = softmax([g[e] for e in chosen])
        limit = self.swiglu_limit
        alpha = self.swiglu_alpha
        acc = [0.0] * self.n_embd
        for e, we in zip(chosen, weights):
            te = q8_0_roundtrip(t) if self.q8_expert_inputs else t
            gate = matvec(L.wgate[e], te, L.bgate[e])
            up = matvec(L.wup[e], te, L.bup[e])
            h = []
            for a, u in zip(gate, up):
                a = min(a, limit)
                u = min(max(u, -limit), limit)
                h.append(a * sigmoid(alpha * a) * (u + 1.0))
            y = matvec(L.wdown[e], q8_0_roundtrip(h) if self.q8_expert_inputs else h, L.bdown[e])
            acc = [s + we * yi for s, yi in zip(acc, y)]
        return [a + b for a, b in zip(x, acc)]

    def logits(self, x):
        return matvec(self.output, rmsnorm(x, self.output_norm, self.eps))

    def _embed(self, token):
        if not 0 <= token < self.n_vocab:
            raise ModelError("token id %d out of range (n_vocab %d)" % (token, self.n_vocab))
        return list(self.tok_embd[token])

    # ---- incremental (KV cache) -----------------------------------------------------------------

    def new_cache(self):
        return [([], []) for _ in range(self.n_layer)]

    def forward_token(self, token, pos, cache, want_logits=True):
        keys0 = cache[0][0]
        if len(keys0) != pos:
            raise ModelError("cache holds %d positions, asked for position %d" % (len(keys0), pos))
        x = self._embed(token)
        for il, L in enumerate(self.layers):
            qh, kh, vh = self._qkv(L, x, pos)
            keys, vals = cache[il]
            keys.append(kh)
            vals.append(vh)
            att = self.attend(il, qh, keys, vals, self.window_start(il, pos), pos)
            o = matvec(L.wo, att, L.bo)
            x = [a + b for a, b in zip(x, o)]
            x = self.mlp(L, x)
        return self.logits(x) if want_logits else None

    # ---- full recomputation (no cache), reference-style mask matrix -------------------------------

    def forward_full(self, tokens):
        """Logits at every position, recomputing the whole sequence without a cache, using the
        reference's mask: triu(-inf, diagonal=1) + tril(-inf, diagonal=-window), sink column appended."""
        n = len(tokens)
        D = self.head_dim
        ninf = float("-inf")
        X = [self._embed(t) for t in tokens]
        for il, L in enumerate(self.layers):
            QKV = [self._qkv(L, X[p], p) for p in range(n)]
            window = self.window if self.swa[il] else 0
            mask = []
            for i in range(n):
                row = []
                for j in range(n):
                    mv = ninf if j > i else 0.0                     # triu(diagonal=1)
                    if window > 0 and j - i <= -window:             # tril(diagonal=-window)
                        mv = mv + ninf
                    row.append(mv)
                mask.append(row)
            sinks = L.sinks
            newX = []
            for i in range(n):
                qh = QKV[i][0]
                out = []
                for h in range(self.n_head):
                    g = h // self.q_mult
                    row = [sum(map(_mul, qh[h], QKV[j][1][g])) * self.sm_scale + mask[i][j]
                           for j in range(n)]
                    row.append(sinks[h])
                    m = max(row)
                    ex = [_exp(r - m) for r in row]
                    denom = sum(ex)
                    W = [e / denom for e in ex[:-1]]
                    acc = [0.0] * D
                    for j in range(n):
                        w = W[j]
                        acc = [a + w * b for a, b in zip(acc, QKV[j][2][g])]
                    out.extend(acc)
                o = matvec(L.wo, out, L.bo)
                newX.append([a + b for a, b in zip(X[i], o)])
            X = [self.mlp(L, x) for x in newX]
        return [self.logits(x) for x in X]


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------

def prompt_positions(n):
    return list(range(0, n, 8)) + ([n - 1] if (n - 1) % 8 else [])


def run(model, ids, n_greedy=32, log=None):
    """Returns (positions, rows of logits at those positions, greedy ids, last prompt logits)."""
    n = len(ids)
    if n == 0:
        raise ModelError("empty prompt")
    positions = prompt_positions(n)
    want = set(positions)
    cache = model.new_cache()
    rows = {}
    last = None
    t0 = time.time()
    for p, tok in enumerate(ids):
        need = p in want or p == n - 1
        lg = model.forward_token(tok, p, cache, need)
        if p in want:
            rows[p] = lg
        if p == n - 1:
            last = lg
    if log:
        log("prompt: %d tokens in %.2fs" % (n, time.time() - t0))
    prompt_last = last
    greedy = []
    t0 = time.time()
    for step in range(n_greedy):
        if any(v != v for v in last):
            raise ModelError("NaN in logits")
        nxt = argmax(last)
        greedy.append(nxt)
        if step == n_greedy - 1:
            break
        last = model.forward_token(nxt, n + step, cache, True)
    if log:
        log("greedy: %d tokens in %.2fs" % (len(greedy), time.time() - t0))
    return positions, [rows[p] for p in positions], greedy, prompt_last


def read_ids(path):
    with open(path) as f:
        txt = f.read()
    try:
        return [int(t) for t in txt.split()]
    except ValueError as ex:
        raise ModelError("%s: not whitespace-separated integer token ids (%s)" % (path, ex))


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def write_outputs(prefix, sha, positions, rows, greedy):
    d = os.path.dirname(prefix)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(prefix + ".f32", "wb") as f:
        for r in rows:
            f.write(struct.pack("<%df" % len(r), *r))
    with open(prefix + ".txt", "w") as f:
        f.write("# %s\n" % DESCRIPTION)
        f.write("sha256: %s\n" % sha)
        f.write("positions: %s\n" % " ".join(map(str, positions)))
        f.write("greedy: %s\n" % " ".join(map(str, greedy)))


def main(argv=None):
    ap = argparse.ArgumentParser(description="pure-Python gpt-oss reference over a GGUF file")
    ap.add_argument("model")
    ap.add_argument("prompt_ids")
    ap.add_argument("out_prefix")
    ap.add_argument("--greedy", type=int, default=32, help="number of greedy tokens (default 32)")
    ap.add_argument("-q", "--quiet", action="store_true")
    ap.add_argument("--openai-yarn", action="store_true",
                    help="YaRN's correction range as OpenAI's reference keeps it (unrounded), not as ggml rounds it")
    ap.add_argument("--q8-expert-inputs", action="store_true",
                    help="quantize the experts' inputs to Q8_0 first, as ggml's CPU backend does for MXFP4 weights")
    a = ap.parse_args(argv)

    def log(msg):
        if not a.quiet:
            print(msg, file=sys.stderr)

    t0 = time.time()
    try:
        ids = read_ids(a.prompt_ids)
        model = GptOss(a.model, verbose=not a.quiet, ggml_yarn=not a.openai_yarn)
        model.q8_expert_inputs = a.q8_expert_inputs
        for t in ids:
            if not 0 <= t < model.n_vocab:
                raise ModelError("prompt token id %d out of range (n_vocab %d)" % (t, model.n_vocab))
        positions, rows, greedy, _ = run(model, ids, a.greedy, log)
        sha = sha256_file(a.model)
        write_outputs(a.out_prefix, sha, positions, rows, greedy)
    except (GGUFError, ModelError) as ex:
        print("error: %s" % ex, file=sys.stderr)
        return 2
    log("wrote %s.f32 (%d rows x %d) and %s.txt; total %.2fs"
        % (a.out_prefix, len(rows), model.n_vocab, a.out_prefix, time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
