"""PyTorch CPU DistributedDataParallel (gloo) peer for lmkit's data-parallel training benchmark on
tinyllama-bytes in f32 (a measurement only; the project does not depend on Python).
Model: tests/train/fixtures/torch_llama.py (HF Llama semantics), loaded from
data/models/tinyllama-bytes and wrapped in torch.nn.parallel.DistributedDataParallel.

What it measures: `--world N` processes on this machine (torch.multiprocessing spawn, gloo backend,
rendezvous over a file:// store in a fresh temp dir), each with `--threads` intra-op threads (PER
RANK; interop threads 1). Data: the "text" fields of data/multilingual_text/ud_pud/pud_en.jsonl, each
encoded as [256] + utf8 bytes and concatenated, cut into consecutive windows of 257 tokens;
inputs = w[:-1], targets = w[1:]. The global batch of every step is windows [0, N*B) (B = --batch
per rank, default 8, T = 256); rank r takes windows [r*B, (r+1)*B). With --world 1 the batch is
exactly torch_train_peer.py's. One step = forward + mean cross-entropy over the rank's tokens +
backward (DDP all-reduces gradient buckets, averaging over ranks, overlapped with backward; bucket
cap --bucket-mb, default DDP's 25 MB, first bucket DDP's 1 MB) + clip_grad_norm_(all, 1.0) +
AdamW(foreach=False, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on projections and lm_head,
0.0 on RMSNorm weights and the embedding, lr 1e-3) step + zero_grad, exactly as torch_train_peer.py.
Each step is timed on rank 0 between two barriers (barrier; t0; step; barrier; t1). --warmup steps
(default 2) are not timed, then --steps (default 5) are.

Prints ONE JSON line (from rank 0): median_step_s, tokens_per_s = N*B*T / median, loss_first and
loss_last (the global mean loss: the ranks' losses averaged, outside the timed region), peak RSS
(ru_maxrss) of every rank, weights_equal (sha256 of every rank's parameter bytes after the last step,
gathered to rank 0, all equal), plus allreduce_s: the median time of a plain all_reduce of one flat
f32 buffer of the model's size (a comm-only reference; 0 with --world 1).
--world 1 still spawns one rank with a process group of 1 and wraps the model in DDP (so it
includes DDP's bookkeeping); --no-ddp with --world 1 runs the bare model in this process (then it is
torch_train_peer.py; both give torch_train_peer.py's losses bitwise).

Run from the repository root:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/torch_ddp_peer.py --world 2 --threads 1
    [--batch 8] [--steps 5] [--warmup 2] [--bucket-mb 25]

Caveats: Debian's torch 1.13 is built with BLAS_INFO=generic and here links the reference (netlib)
libblas.so.3, ~2-5 GFLOP/s on 2 threads (see torch_train_peer.py), so the compute part is BLAS-bound
and slow; N ranks x --threads each should not exceed the cores (2 here), or the ranks oversubscribe.
The gloo all-reduce runs on extra gloo/DDP threads in each rank, which compete with compute for the
same cores. GLOO_SOCKET_IFNAME defaults to "lo" (single-machine run). The ranks end with os._exit
after a last barrier instead of destroy_process_group: torch 1.13's teardown of DDP + gloo can
deadlock (GIL vs. gloo worker-thread join; see the end of worker()). The step times on a shared
2-core VM are noisy (single steps vary by 1.5x or more): compare medians of several runs.
"""
import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "train", "fixtures"))
import torch_llama as tl  # noqa: E402

T = 256


def token_windows(n):
    """The first n consecutive windows of T+1 tokens of the pud_en stream, as int64 [n, T+1]."""
    ids = []
    with open(os.path.join(REPO, "data", "multilingual_text", "ud_pud", "pud_en.jsonl"), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                ids += [tl.BOS] + list(json.loads(line)["text"].encode("utf-8"))
            if len(ids) >= n * (T + 1):
                break
    if len(ids) < n * (T + 1):
        raise ValueError(f"pud_en.jsonl too short for {n} windows of {T + 1} tokens")
    return torch.tensor(ids[:n * (T + 1)], dtype=torch.int64).view(n, T + 1)


class LossModule(torch.nn.Module):
    """nn.Module around TorchLlama (which is not one: HF names contain dots) so DDP can wrap it.
    Registers the very same Parameter objects, in model.params order, under names with "." -> "__";
    forward returns the mean cross-entropy."""

    def __init__(self, m):
        super().__init__()
        self.m = m
        for n, p in m.named_parameters():
            self.register_parameter(n.replace(".", "__"), p)

    def forward(self, inp, tgt):
        loss, _ = self.m.loss(inp, tgt)
        return loss


def params_sha256(m):
    h = hashlib.sha256()
    for n, p in m.named_parameters():
        h.update(n.encode())
        h.update(p.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def worker(rank, a, init_file):
    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    N = a.world
    use_ddp = not a.no_ddp
    if use_ddp:
        dist.init_process_group("gloo", init_method="file://" + init_file, rank=rank, world_size=N)
    model = tl.TorchLlama.from_pretrained(dtype=torch.float32)
    mod = LossModule(model)
    if use_ddp:
        net = torch.nn.parallel.DistributedDataParallel(mod, bucket_cap_mb=a.bucket_mb)
    else:
        net = mod
    decay = [p for n, p in model.named_parameters() if tl.is_decayed(n)]
    nodecay = [p for n, p in model.named_parameters() if not tl.is_decayed(n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8, foreach=False)
    w = token_windows(N * a.batch)[rank * a.batch:(rank + 1) * a.batch]
    inp, tgt = w[:, :-1].contiguous(), w[:, 1:].contiguous()
    params = model.parameters()

    def barrier():
        if use_ddp:
            dist.barrier()

    times, losses = [], []
    for i in range(a.warmup + a.steps):
        barrier()
        t0 = time.perf_counter()
        loss = net(inp, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        barrier()
        dt = time.perf_counter() - t0
        lt = loss.detach().clone()
        if use_ddp:
            dist.all_reduce(lt)
        losses.append(lt.item() / N)
        if i >= a.warmup:
            times.append(dt)

    # comm-only reference: all_reduce of one flat f32 buffer of the model's size
    nparam = sum(p.numel() for p in params)
    ar = []
    if use_ddp and N > 1:
        buf = torch.ones(nparam, dtype=torch.float32)
        for i in range(a.warmup + a.steps):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(buf)
            ar.append(time.perf_counter() - t0)
        ar = ar[a.warmup:]

    digest = params_sha256(model)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    info = {"sha256": digest, "rss_mib": rss, "threads": torch.get_num_threads()}
    if use_ddp:
        gathered = [None] * N
        dist.all_gather_object(gathered, info)
    else:
        gathered = [info]
    if rank == 0:
        med = statistics.median(times)
        print(json.dumps({
            "peer": "torch-ddp-gloo" if use_ddp else "torch-plain",
            "world": N, "threads": a.threads, "batch": a.batch, "seq": T,
            "bucket_mb": a.bucket_mb if use_ddp else None,
            "params": nparam, "global_tokens_per_step": N * a.batch * T,
            "steps": a.steps, "warmup": a.warmup,
            "median_step_s": med, "min_step_s": min(times), "step_s": times,
            "tokens_per_s": N * a.batch * T / med,
            "loss_first": losses[0], "loss_last": losses[-1],
            "allreduce_s": statistics.median(ar) if ar else 0.0,
            "rss_mib": [g["rss_mib"] for g in gathered],
            "weights_equal": all(g["sha256"] == gathered[0]["sha256"] for g in gathered),
            "weights_sha256": gathered[0]["sha256"][:16],
            "torch": torch.__version__,
        }), flush=True)
    if use_ddp:
        # Leave without tearing the process group down: in torch 1.13 freeing the DDP Reducer /
        # ProcessGroupGloo (destroy_process_group, or the locals at return) can deadlock: the
        # main thread joins gloo's worker threads while holding the GIL, and a worker thread
        # frees a tensor of a finished work item and waits for the GIL (seen here: 1 of 4 runs
        # hung for good).
        dist.barrier()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads per rank")
    ap.add_argument("--batch", type=int, default=8, help="windows per rank")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--bucket-mb", type=float, default=25.0, help="DDP bucket_cap_mb (default 25, DDP's)")
    ap.add_argument("--no-ddp", action="store_true", help="with --world 1: bare model, no process group")
    a = ap.parse_args()
    if a.world < 1 or a.steps < 1:
        ap.error("--world and --steps must be >= 1")
    if a.no_ddp and a.world != 1:
        ap.error("--no-ddp needs --world 1")
    if a.bucket_mb == int(a.bucket_mb):
        a.bucket_mb = int(a.bucket_mb)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    # children inherit these before torch initialises its pools
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    tmp = tempfile.mkdtemp(prefix="torch_ddp_peer_")
    try:
        init_file = os.path.join(tmp, "rendezvous")
        if a.no_ddp:
            worker(0, a, init_file)
        else:  # also --world 1: a spawned group of 1, so that the worker can os._exit
            mp.spawn(worker, args=(a, init_file), nprocs=a.world, join=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
