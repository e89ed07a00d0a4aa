"""PyTorch CPU eager peer for one training step of tinyllama-bytes in f32 (a measurement only; the
project does not depend on Python). Model: tests/train/fixtures/torch_llama.py (HF Llama semantics).

Batch: 8 x 256 tokens of real text: the "text" fields of data/multilingual_text/ud_pud/pud_en.jsonl,
each encoded as [256] + utf8 bytes and concatenated; 8 consecutive windows of 257 tokens,
inputs = w[:-1], targets = w[1:]. One step = forward + mean cross-entropy + backward +
clip_grad_norm_(all, 1.0) + AdamW(foreach=False, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on
projections and lm_head, 0.0 on RMSNorm weights and the embedding, lr 1e-3) step + zero_grad.
Prints one JSON line. Note: Debian's torch 1.13 is built with BLAS_INFO=generic and here links the
reference (netlib) libblas.so.3, ~2-5 GFLOP/s on 2 threads, so this peer is BLAS-bound. Run from the repository root:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/torch_train_peer.py --threads 2 [--steps 5] [--warmup 2]
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "train", "fixtures"))
import torch_llama as tl  # noqa: E402

B, T = 8, 256


def make_batch():
    ids = []
    with open(os.path.join(REPO, "data", "multilingual_text", "ud_pud", "pud_en.jsonl"), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                ids += [tl.BOS] + list(json.loads(line)["text"].encode("utf-8"))
            if len(ids) >= B * (T + 1):
                break
    if len(ids) < B * (T + 1):
        raise ValueError("pud_en.jsonl too short")
    w = torch.tensor(ids[:B * (T + 1)], dtype=torch.int64).view(B, T + 1)
    return w[:, :-1].contiguous(), w[:, 1:].contiguous()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = tl.TorchLlama.from_pretrained(dtype=torch.float32)
    decay = [p for n, p in model.named_parameters() if tl.is_decayed(n)]
    nodecay = [p for n, p in model.named_parameters() if not tl.is_decayed(n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8, foreach=False)
    inp, tgt = make_batch()
    times, losses = [], []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        loss, _ = model.loss(inp, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        dt = time.perf_counter() - t0
        losses.append(loss.item())
        if i >= a.warmup:
            times.append(dt)
    med = statistics.median(times)
    print(json.dumps({
        "peer": "torch_train_peer", "threads": a.threads, "batch": [B, T], "tokens_per_step": B * T,
        "steps": a.steps, "warmup": a.warmup,
        "median_s_per_step": med, "min_s_per_step": min(times), "tokens_per_s": B * T / med,
        "first_loss": losses[0], "last_loss": losses[-1],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
