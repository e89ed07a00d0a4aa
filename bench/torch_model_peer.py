"""PyTorch CPU eager peer for bench/model_bench.ts: the same Llama architecture written in plain
torch ops, on the same tinyllama-bytes weights (read straight from model.safetensors), in f32.
Checks itself against golden.json, then times prefill (256 tokens) and KV-cached greedy decode
(64 tokens), best of 5. The project does not depend on Python; this is a measurement only:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/torch_model_peer.py"""
import json, math, struct, sys, time
import numpy as np
import torch

torch.set_num_threads(int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 2)
D = "data/models/tinyllama-bytes"
cfg = json.load(open(f"{D}/config.json"))
raw = open(f"{D}/model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
W = {}
for k, v in hdr.items():
    if k == "__metadata__": continue
    a, b = v["data_offsets"]
    W[k] = torch.from_numpy(np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float16).astype(np.float32).reshape(v["shape"]))
H, KV, hd, L = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"], cfg["num_hidden_layers"]
eps = cfg["rms_norm_eps"]
inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))


def rms(x, w):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rot(x):
    return torch.cat((-x[..., hd // 2:], x[..., :hd // 2]), -1)


@torch.inference_mode()
def forward(ids, cache):
    T = len(ids); start = cache["len"]
    pos = torch.arange(start, start + T).float()
    f = torch.outer(pos, inv); emb = torch.cat((f, f), -1); cos, sin = emb.cos(), emb.sin()
    h = W["model.embed_tokens.weight"][torch.tensor(ids)]
    for l in range(L):
        p = f"model.layers.{l}."
        x = rms(h, W[p + "input_layernorm.weight"])
        q = (x @ W[p + "self_attn.q_proj.weight"].T).view(T, H, hd).transpose(0, 1)
        k = (x @ W[p + "self_attn.k_proj.weight"].T).view(T, KV, hd).transpose(0, 1)
        v = (x @ W[p + "self_attn.v_proj.weight"].T).view(T, KV, hd).transpose(0, 1)
        q = q * cos + rot(q) * sin; k = k * cos + rot(k) * sin
        if l in cache["k"]:
            k = torch.cat((cache["k"][l], k), 1); v = torch.cat((cache["v"][l], v), 1)
        cache["k"][l], cache["v"][l] = k, v
        kk = k.repeat_interleave(H // KV, 0); vv = v.repeat_interleave(H // KV, 0)
        s = q @ kk.transpose(1, 2) / math.sqrt(hd)
        mask = torch.full((T, start + T), float("-inf")).triu(start + 1)
        a = torch.softmax(s + mask, -1) @ vv
        h = h + a.transpose(0, 1).reshape(T, H * hd) @ W[p + "self_attn.o_proj.weight"].T
        x = rms(h, W[p + "post_attention_layernorm.weight"])
        g = x @ W[p + "mlp.gate_proj.weight"].T; u = x @ W[p + "mlp.up_proj.weight"].T
        h = h + (torch.nn.functional.silu(g) * u) @ W[p + "mlp.down_proj.weight"].T
    cache["len"] = start + T
    return rms(h, W["model.norm.weight"]) @ W["lm_head.weight"].T


def new_cache():
    return {"len": 0, "k": {}, "v": {}}


g = json.load(open(f"{D}/golden.json"))
p = g["prompts"][0]
last = forward(p["input_ids"], new_cache())[-1]
ref = torch.tensor(p["last_logits"])
rel = ((last - ref).norm() / ref.norm()).item()
assert rel < 1e-4, f"torch peer disagrees with golden.json: {rel}"
seq = g["val_batch"]["sequences"][0][:256]


def best(fn, reps=5):
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return min(ts)


def decode():
    c = new_cache(); logits = forward(p["input_ids"], c)
    nxt = int(logits[-1].argmax())
    t = time.perf_counter()
    for _ in range(64):
        nxt = int(forward([nxt], c)[-1].argmax())
    return time.perf_counter() - t


pre = best(lambda: forward(seq, new_cache()))
dec = min(decode() for _ in range(3))
print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "golden_rel_l2": rel,
                  "prefill_tokens_per_s": 256 / pre, "decode_tokens_per_s": 64 / dec}))
