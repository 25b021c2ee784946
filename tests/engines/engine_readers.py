#!/usr/bin/env python3
"""Reads Tessera's exports the way the inference engines do, independently of Tessera's C++ code,
and checks that each one computes the same logits as the reference fake-quant Hugging Face folder.

    python3 engine_readers.py [--half-weights] [--ids 1,5,...] [--write-reference-logits FILE]
                              REFERENCE_HF_FOLDER EXPORT [EXPORT ...]

--half-weights rounds the reference's Linear, embedding and output weights to fp16 (norms stay
as they are), which is what gguf-f16 holds. --ids sets the token ids (default: BOS and 47 seeded
random ids); --write-reference-logits writes the reference's logits, float64 [ids, vocab]
little-endian, so that a caller can compare them with its own forward pass.

An EXPORT is a GPTQ or AWQ folder (told apart by config.json's quantization_config), a fake-quant
Hugging Face folder, or a .gguf file. Each is turned into weights with the conventions of the
engine that loads it, written here from those engines' own descriptions rather than from
Tessera's packers:
  - GPTQ (AutoGPTQ / GPTQModel / transformers): qweight [K/pack, N] int32, each output column a
    little-endian bit stream of `bits`-wide codes along K (for 3 bits the stream runs across three
    words per 32 codes: AutoGPTQ's 10 + 1 + 10 + 1 + 10 layout is exactly this stream); qzeros
    [G, N/pack] the same along N; checkpoint_format "gptq" (v1) stores zero - 1; g_idx [K];
    W[n, k] = scales[g_idx[k], n] * (q[k, n] - zero[g_idx[k], n]).
  - AWQ-GEMM (AutoAWQ): qweight [K, N/8], nibble i of a word holds column 8c + [0,2,4,6,1,3,5,7][i];
    qzeros [G, N/8] the same; W^T = (q - z) * scales.
  - GGUF (llama.cpp): F32/F16/Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 as ggml dequantizes them, and the forward pass of
    llama.cpp's llama graph: q/k rows are in ggml order and RoPE rotates adjacent pairs
    (LLAMA_ROPE_TYPE_NORM), hyperparameters from the llama.* metadata, not from config.json.
  - Hugging Face: RoPE by rotate_half on the two halves of each head (transformers' LlamaAttention).
Dequantization happens in the scales' dtype (fp32 for fp32 exports), as the engines' torch paths
compute it; the forward pass then runs in float64 on a fixed, seeded sequence of token ids. RoPE
scaling, a partial rotary dimension and any other checkpoint format are refused, not ignored. Prints one line per
export and exits with 1 when any export's logits differ from the reference by more than 1e-9
relative (equal weights give equal logits up to float64 rounding; a wrong permutation, packing
order or zero convention gives differences of order 1).
"""
import json
import os
import struct
import sys

import numpy as np

# --------------------------------------------------------------------------------------------
# safetensors


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    dtypes = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64, "U8": np.uint8}
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[base + begin : base + end]
        if info["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=dtypes[info["dtype"]])
        tensors[name] = arr.reshape(info["shape"])
    return tensors


# --------------------------------------------------------------------------------------------
# GPTQ and AWQ


def unpack_stream(words, bits, count):
    """Codes of a little-endian bit stream held in int32 words along axis 0: [W, C] -> [count, C]."""
    u = words.astype(np.int64) & 0xFFFFFFFF
    bit_rows = ((u[:, None, :] >> np.arange(32)[None, :, None]) & 1).reshape(-1, u.shape[1])  # [32W, C]
    bit_rows = bit_rows[: count * bits].reshape(count, bits, u.shape[1])
    return (bit_rows << np.arange(bits)[None, :, None]).sum(axis=1)


def gptq_weight(t, module, qc):
    bits = qc["bits"]
    qweight = t[module + ".qweight"]
    scales = t[module + ".scales"]  # [G, N]
    g_idx = t[module + ".g_idx"].astype(np.int64)  # [K]
    k, n = g_idx.shape[0], qweight.shape[1]
    q = unpack_stream(qweight, bits, k)  # [K, N]
    zeros = unpack_stream(t[module + ".qzeros"].T, bits, n).T  # [G, N]
    checkpoint_format = qc.get("checkpoint_format", "gptq")
    if checkpoint_format not in ("gptq", "gptq_v2"):
        raise SystemExit(f"{module}: checkpoint_format {checkpoint_format} is neither gptq nor gptq_v2")
    if checkpoint_format == "gptq":
        zeros = zeros + 1  # v1 stores zero - 1
    # In the scales' dtype, as the engines' torch paths compute (fp16 scales give fp16 weights).
    w = scales[g_idx, :] * (q - zeros[g_idx, :]).astype(scales.dtype)  # [K, N]
    return w.T.astype(np.float64)


AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


def awq_unpack(words):
    """[R, C/8] int32 -> [R, C]: nibble i of word c holds column 8c + AWQ_ORDER[i]."""
    u = words.astype(np.int64) & 0xFFFFFFFF
    out = np.zeros((u.shape[0], u.shape[1] * 8), dtype=np.int64)
    for i, col in enumerate(AWQ_ORDER):
        out[:, col::8] = (u >> (4 * i)) & 0xF
    return out


def awq_weight(t, module, qc):
    group = qc["group_size"]
    q = awq_unpack(t[module + ".qweight"])  # [K, N]
    z = awq_unpack(t[module + ".qzeros"])  # [G, N]
    s = t[module + ".scales"]  # [G, N]
    g = np.arange(q.shape[0]) // group
    return ((q - z[g, :]).astype(s.dtype) * s[g, :]).T.astype(np.float64)  # in the scales' dtype


# --------------------------------------------------------------------------------------------
# Hugging Face folders (fake-quant, GPTQ, AWQ)


def hf_model(folder):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    t = read_safetensors(os.path.join(folder, "model.safetensors"))
    qc = cfg.get("quantization_config")
    kind = "hf"
    if qc:
        method = qc["quant_method"]
        if method == "gptq":
            assert qc.get("desc_act") in (False, None), "act-order GPTQ is not written by Tessera"
            kind = "gptq"
        elif method == "awq":
            assert qc.get("version", "gemm").lower() == "gemm" and qc.get("zero_point", True), qc
            kind = "awq"
        else:
            raise SystemExit(f"{folder}: unknown quant_method {method}")
        not_converted = set(qc.get("modules_to_not_convert") or [])
    weights = {}
    for name, arr in t.items():
        if name.endswith(".qweight"):
            module = name[: -len(".qweight")]
            weights[module + ".weight"] = (gptq_weight if kind == "gptq" else awq_weight)(t, module, qc)
        elif name.endswith((".qzeros", ".scales", ".g_idx")):
            continue
        else:
            if kind != "hf" and name.endswith("_proj.weight") and name[: -len(".weight")] not in not_converted:
                raise SystemExit(f"{folder}: float {name} is not listed in modules_to_not_convert")
            weights[name] = arr.astype(np.float64)
    if cfg.get("rope_scaling"):
        raise SystemExit(f"{folder}: rope_scaling {cfg['rope_scaling']} is not implemented by this reader")
    if cfg.get("tie_word_embeddings", False):
        weights.pop("lm_head.weight", None)  # transformers ties the head to the embeddings
    hp = dict(
        layers=cfg["num_hidden_layers"],
        heads=cfg["num_attention_heads"],
        kv_heads=cfg.get("num_key_value_heads", cfg["num_attention_heads"]),
        eps=cfg["rms_norm_eps"],
        theta=cfg.get("rope_theta", 10000.0),
    )
    return llama_model(weights, hp, HF_NAMES, rope="half")


# --------------------------------------------------------------------------------------------
# One model description for both naming schemes

HF_NAMES = dict(
    block="model.layers.{}.", attn_norm="input_layernorm", ffn_norm="post_attention_layernorm",
    q="self_attn.q_proj", k="self_attn.k_proj", v="self_attn.v_proj", o="self_attn.o_proj",
    gate="mlp.gate_proj", up="mlp.up_proj", down="mlp.down_proj",
    embed="model.embed_tokens", norm="model.norm", head="lm_head")
GGUF_NAMES = dict(
    block="blk.{}.", attn_norm="attn_norm", ffn_norm="ffn_norm",
    q="attn_q", k="attn_k", v="attn_v", o="attn_output", gate="ffn_gate", up="ffn_up", down="ffn_down",
    embed="token_embd", norm="output_norm", head="output")
BLOCK_TENSORS = ("attn_norm", "ffn_norm", "q", "k", "v", "o", "gate", "up", "down")


def llama_model(t, hp, names, rope):
    blocks = {}
    for i in range(hp["layers"]):
        p = names["block"].format(i)
        blocks[i] = {n: t[p + names[n] + ".weight"] for n in BLOCK_TENSORS}
    embed = t[names["embed"] + ".weight"]
    head = t.get(names["head"] + ".weight", embed)  # tied embeddings when absent
    return dict(hp=hp, blocks=blocks, embed=embed, norm=t[names["norm"] + ".weight"], head=head, rope=rope)


# --------------------------------------------------------------------------------------------
# GGUF


def read_gguf(path):
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        s = data[pos : pos + n].decode("utf-8")
        pos += n
        return s

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(t):
        if t in scalar:
            return take(scalar[t])
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        raise SystemExit(f"{path}: unknown GGUF value type {t}")

    assert data[:4] == b"GGUF", f"{path} is not a GGUF file"
    pos = 4
    version, n_tensors, n_kv = take("I"), take("Q"), take("Q")
    assert version == 3, version
    meta = {}
    for _ in range(n_kv):
        key = string()
        meta[key] = value(take("I"))
    infos = []
    for _ in range(n_tensors):
        name = string()
        nd = take("I")
        ne = [take("Q") for _ in range(nd)]
        infos.append((name, ne, take("I"), take("Q")))
    align = meta.get("general.alignment", 32)
    base = (pos + align - 1) // align * align
    tensors = {}
    for name, ne, typ, off in infos:
        count = int(np.prod(ne))
        shape = list(reversed(ne))  # ne[0] varies fastest
        start = base + off
        if typ == 0:  # F32
            arr = np.frombuffer(data, np.float32, count, start).astype(np.float64)
        elif typ == 1:  # F16
            arr = np.frombuffer(data, np.float16, count, start).astype(np.float64)
        elif typ in (3, 7):  # Q4_1, Q5_1: ggml's dequantize_row_q4_1 / dequantize_row_q5_1
            block = 20 if typ == 3 else 24
            nb = count // 32
            raw = np.frombuffer(data, np.uint8, nb * block, start).reshape(nb, block)
            d = raw[:, 0:2].copy().view(np.float16).astype(np.float32)
            m = raw[:, 2:4].copy().view(np.float16).astype(np.float32)
            qs = raw[:, block - 16 :].astype(np.int64)
            x = np.concatenate([qs & 0xF, qs >> 4], axis=1)  # element j and j + 16
            if typ == 7:
                qh = raw[:, 4:8].copy().view(np.uint32).astype(np.int64)
                high = (qh >> np.arange(32)[None, :]) & 1
                x = x | (high << 4)
            arr = (x.astype(np.float32) * d + m).astype(np.float64)  # fp32 as ggml computes it
        elif typ in (2, 6):  # Q4_0, Q5_0: ggml's dequantize_row_q4_0 / q5_0, y = (x - 8|16) d
            block = 18 if typ == 2 else 22
            nb = count // 32
            raw = np.frombuffer(data, np.uint8, nb * block, start).reshape(nb, block)
            d = raw[:, 0:2].copy().view(np.float16).astype(np.float32)
            qs = raw[:, block - 16 :].astype(np.int64)
            x = np.concatenate([qs & 0xF, qs >> 4], axis=1)
            if typ == 6:
                qh = raw[:, 2:6].copy().view(np.uint32).astype(np.int64)
                x = x | (((qh >> np.arange(32)[None, :]) & 1) << 4)
            arr = ((x - (8 if typ == 2 else 16)).astype(np.float32) * d).astype(np.float64)
        elif typ == 8:  # Q8_0: ggml's dequantize_row_q8_0, y = qs d with qs int8
            nb = count // 32
            raw = np.frombuffer(data, np.uint8, nb * 34, start).reshape(nb, 34)
            d = raw[:, 0:2].copy().view(np.float16).astype(np.float32)
            qs = raw[:, 2:].copy().view(np.int8).astype(np.float32)
            arr = (qs * d).astype(np.float64)
        else:
            raise SystemExit(f"{path}: tensor {name} has ggml type {typ}, which this reader does not decode")
        tensors[name] = arr.reshape(shape)
    return meta, tensors


def gguf_model(path):
    meta, t = read_gguf(path)
    assert meta["general.architecture"] == "llama", meta["general.architecture"]
    if "llama.rope.scaling.type" in meta:
        raise SystemExit(f"{path}: RoPE scaling {meta['llama.rope.scaling.type']} is not implemented by this reader")
    head_dim = meta["llama.embedding_length"] // meta["llama.attention.head_count"]
    head_dim = meta.get("llama.attention.key_length", head_dim)
    if meta.get("llama.rope.dimension_count", head_dim) != head_dim:
        raise SystemExit(f"{path}: llama.rope.dimension_count {meta['llama.rope.dimension_count']} is not the head "
                         f"size {head_dim}; partial rotary embeddings are not implemented by this reader")
    hp = dict(
        layers=meta["llama.block_count"],
        heads=meta["llama.attention.head_count"],
        kv_heads=meta.get("llama.attention.head_count_kv", meta["llama.attention.head_count"]),
        eps=meta["llama.attention.layer_norm_rms_epsilon"],
        theta=meta.get("llama.rope.freq_base", 10000.0),
    )
    return llama_model(t, hp, GGUF_NAMES, rope="pairs")


# --------------------------------------------------------------------------------------------
# LLaMA forward pass (float64)


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * w


def rope(x, theta, style):
    """x: [heads, T, d]. 'half': transformers' rotate_half; 'pairs': llama.cpp's NORM mode."""
    _, t, d = x.shape
    inv = theta ** (-np.arange(0, d, 2, dtype=np.float64) / d)  # [d/2]
    ang = np.arange(t, dtype=np.float64)[:, None] * inv[None, :]  # [T, d/2]
    cos, sin = np.cos(ang), np.sin(ang)
    if style == "half":
        a, b = x[..., : d // 2], x[..., d // 2 :]
        return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = a * cos - b * sin
    out[..., 1::2] = b * cos + a * sin
    return out


def forward(m, ids):
    hp = m["hp"]
    x = m["embed"][ids]  # [T, hidden]
    t = len(ids)
    mask = np.triu(np.full((t, t), -np.inf), 1)
    for i in range(hp["layers"]):
        b = m["blocks"][i]
        h = rms_norm(x, b["attn_norm"], hp["eps"])
        q, k, v = h @ b["q"].T, h @ b["k"].T, h @ b["v"].T
        hd = q.shape[1] // hp["heads"]
        q = q.reshape(t, hp["heads"], hd).transpose(1, 0, 2)
        k = k.reshape(t, hp["kv_heads"], hd).transpose(1, 0, 2)
        v = v.reshape(t, hp["kv_heads"], hd).transpose(1, 0, 2)
        q, k = rope(q, hp["theta"], m["rope"]), rope(k, hp["theta"], m["rope"])
        rep = hp["heads"] // hp["kv_heads"]
        k, v = np.repeat(k, rep, axis=0), np.repeat(v, rep, axis=0)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + mask
        p = np.exp(s - s.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
        a = (p @ v).transpose(1, 0, 2).reshape(t, -1)
        x = x + a @ b["o"].T
        h = rms_norm(x, b["ffn_norm"], hp["eps"])
        g = h @ b["gate"].T
        x = x + ((g / (1 + np.exp(-g))) * (h @ b["up"].T)) @ b["down"].T
    return rms_norm(x, m["norm"], hp["eps"]) @ m["head"].T


def load(path):
    return gguf_model(path) if path.endswith(".gguf") else hf_model(path)


def half_weights(m):
    """The model with its Linear, embedding and output weights rounded to fp16 and its norms kept:
    what gguf-f16 stores (F16 for those, F32 for norms)."""
    half = lambda w: w.astype(np.float16).astype(np.float64)
    linears = ("q", "k", "v", "o", "gate", "up", "down")
    blocks = {i: {n: half(w) if n in linears else w for n, w in b.items()} for i, b in m["blocks"].items()}
    return dict(m, blocks=blocks, embed=half(m["embed"]), head=half(m["head"]))


def main(argv):
    options = {}
    while len(argv) > 1 and argv[1].startswith("--"):
        flag = argv.pop(1)
        options[flag] = True if flag == "--half-weights" else argv.pop(1)
    if len(argv) < 3:
        raise SystemExit(__doc__)
    reference = load(argv[1])
    if "--half-weights" in options:
        reference = half_weights(reference)
    vocab = reference["embed"].shape[0]
    if "--ids" in options:
        ids = np.array([int(i) for i in options["--ids"].split(",")])
    else:
        ids = np.concatenate([[1], np.random.default_rng(7).integers(3, vocab, 47)])
    ref = forward(reference, ids)
    if "--write-reference-logits" in options:
        ref.astype("<f8").tofile(options["--write-reference-logits"])
    worst = 0.0
    for path in argv[2:]:
        got = forward(load(path), ids)
        rel = float(np.abs(got - ref).max() / np.abs(ref).max())
        worst = max(worst, rel)
        same_top = int((got.argmax(-1) == ref.argmax(-1)).sum())
        print(f"{os.path.basename(path.rstrip('/'))}: max |logit - reference| / max |reference| = {rel:.3e}, "
              f"argmax agrees at {same_top} of {len(ids)} positions")
    if worst > 1e-9:
        print(f"FAILED: logits differ from {argv[1]} (worst {worst:.3e})")
        return 1
    print(f"all {len(argv) - 2} exports compute the reference's logits")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
