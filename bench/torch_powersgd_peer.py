"""torch's own PowerSGD DDP communication hook (torch.distributed.algorithms.ddp_comm_hooks.
powerSGD_hook, unmodified) on given gradient matrices, over gloo on --world ranks, as the reference
for lmkit's lib/comm/powersgd.ts (a measurement and a fixture maker; lmkit does not depend on
Python).

Input (--in DIR, written by tests/comm/fixtures/make_powersgd.ts or bench/powersgd_bench.ts):
  meta.json  {"world": N, "steps": S, "layers": [{"name", "rows", "cols", "rank"}, ...]}
  grads.bin  f32 little-endian, for step s, rank r, layer l (in that nesting order) the layer's
             rows x cols gradient, row-major
  q0.bin     f32, for each layer its start Q (cols x rank, row-major), the same on every rank
Each layer is one bucket with its own PowerSGDState(matrix_approximation_rank=rank,
min_compression_rate=1, use_error_feedback=True, warm_start=True, orthogonalization_epsilon=0).
PowerSGD starts at once: state.iter is set to start_powerSGD_iter (torch would first run
start_powerSGD_iter vanilla all-reduce steps), and the start Q is put in state.q_memory_dict, so
that the hook takes its warm-start branch (it orthogonalises Q, then P = M Q, ...) instead of
drawing Q from its own generator. The bucket is a minimal stand-in for dist.GradBucket (buffer,
gradients, index, is_last): the hook is plain Python over those four methods. Every layer must be
compressible ((rows + cols) * rank < rows * cols): torch keeps "local - mean" as the error of an
uncompressed tensor, lmkit keeps none.

Output (--out DIR, from rank 0): approx.bin (f32, for step s, layer l, the hook's result: the MEAN
over ranks P Q^T / N, identical on every rank, checked), residual.bin (f32, for rank r, layer l,
state.error_dict after the last step, i.e. M - P Q^T / N), and one JSON line on stdout:
step_s (wall time of each step over all layers, barrier to barrier, rank 0), median_step_s,
approx_equal_on_ranks, torch version, threads.

Run from the repository root:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/torch_powersgd_peer.py \
        --in DIR --out DIR [--threads 1] [--repeat 1]
--repeat R runs the S steps R times (fresh states each time, the same start Q); outputs come from
the first run, times from all. The ranks end with os._exit after a last barrier (torch 1.13's
gloo teardown can deadlock; see bench/torch_ddp_peer.py).
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as ph


class Bucket:
    """The four methods of dist.GradBucket that powerSGD_hook calls, over one layer's matrix."""

    def __init__(self, flat, rows, cols):
        self._flat = flat
        self._shape = (rows, cols)

    def buffer(self):
        return self._flat

    def gradients(self):
        return [self._flat.view(*self._shape)]

    def index(self):
        return 0

    def is_last(self):
        return True


def load(a):
    with open(os.path.join(a.inp, "meta.json")) as f:
        meta = json.load(f)
    grads = np.fromfile(os.path.join(a.inp, "grads.bin"), dtype="<f4")
    q0 = np.fromfile(os.path.join(a.inp, "q0.bin"), dtype="<f4")
    return meta, grads, q0


def worker(rank, a, init_file):
    torch.set_num_threads(a.threads)
    meta, grads, q0 = load(a)
    N, S, layers = meta["world"], meta["steps"], meta["layers"]
    dist.init_process_group("gloo", init_method="file://" + init_file, rank=rank, world_size=N)
    sizes = [l["rows"] * l["cols"] for l in layers]
    per_rank = sum(sizes)

    def grad(s, r, li):
        off = (s * N + r) * per_rank + sum(sizes[:li])
        return torch.from_numpy(grads[off:off + sizes[li]].copy())

    qoffs = np.cumsum([0] + [l["cols"] * l["rank"] for l in layers])
    times, approx, residual, equal = [], [], [], True
    for rep in range(a.repeat):
        states = []
        for li, l in enumerate(layers):
            assert (l["rows"] + l["cols"]) * l["rank"] < l["rows"] * l["cols"], "layer not compressible"
            st = ph.PowerSGDState(process_group=None, matrix_approximation_rank=l["rank"],
                                  start_powerSGD_iter=2, min_compression_rate=1,
                                  use_error_feedback=True, warm_start=True,
                                  orthogonalization_epsilon=0, random_seed=0)
            st.iter = st.start_powerSGD_iter
            st.p_memory_dict[0] = torch.empty(l["rows"] * l["rank"])
            st.q_memory_dict[0] = torch.from_numpy(q0[qoffs[li]:qoffs[li + 1]].copy())
            states.append(st)
        inputs = [[grad(s, rank, li) for li in range(len(layers))] for s in range(S)]
        for s in range(S):
            dist.barrier()
            t0 = time.perf_counter()
            outs = []
            for li, l in enumerate(layers):
                b = Bucket(inputs[s][li], l["rows"], l["cols"])
                outs.append(ph.powerSGD_hook(states[li], b).wait())
            dist.barrier()
            times.append(time.perf_counter() - t0)
            if rep == 0:
                for o in outs:
                    mine = o.clone()
                    gathered = [torch.empty_like(mine) for _ in range(N)]
                    dist.all_gather(gathered, mine)
                    equal = equal and all(torch.equal(g, gathered[0]) for g in gathered)
                    approx.append(mine.numpy().copy())
        if rep == 0:
            mine = torch.cat([st.error_dict[0] for st in states])
            gathered = [torch.empty_like(mine) for _ in range(N)]
            dist.all_gather(gathered, mine)
            residual = [g.numpy().copy() for g in gathered]
    if rank == 0:
        os.makedirs(a.out, exist_ok=True)
        np.concatenate(approx).astype("<f4").tofile(os.path.join(a.out, "approx.bin"))
        np.concatenate(residual).astype("<f4").tofile(os.path.join(a.out, "residual.bin"))
        print(json.dumps({
            "peer": "torch-powerSGD_hook-gloo", "world": N, "steps": S, "repeat": a.repeat,
            "threads": torch.get_num_threads(), "step_s": times,
            "median_step_s": statistics.median(times), "approx_equal_on_ranks": equal,
            "torch": torch.__version__,
        }), flush=True)
    dist.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--in", dest="inp", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads per rank")
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    with open(os.path.join(a.inp, "meta.json")) as f:
        world = json.load(f)["world"]
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    tmp = tempfile.mkdtemp(prefix="torch_powersgd_peer_")
    try:
        mp.spawn(worker, args=(a, os.path.join(tmp, "rendezvous")), nprocs=world, join=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
