"""PyTorch CPU peer of one GPTQ layer (a measurement only; the project does not depend on Python).

The algorithm as IST-DASLab/gptq runs it, written here from its description: the Hessian
accumulated per calibration sequence (H <- H*n/(n+1), then x*sqrt(2/(n+1)) and H += x x^T, f32),
dead inputs, 1 % damping, Cholesky -> cholesky_inverse -> upper Cholesky, lazy blocks of 128,
4-bit asymmetric per-row-group (group 128) min/max quantizer refitted at each group's first column,
error compensation inside the block and a GEMM after it. Random data: W and X standard normal
(f32), the same shapes as bench/gptq_bench.ts. Prints one JSON line with the seconds of the
Hessian, of the quantization, and the relative output error ||WX - QX||^2 / ||WX||^2 on a slice.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/torch_gptq_peer.py \
        --rows 4096 --cols 4096 --samples 128 --seqlen 512 --threads 2
"""
import argparse
import json
import math
import time

import torch


def quantize(x, scale, zero, maxq):
    q = torch.clamp(torch.round(x / scale) + zero, 0, maxq)
    return scale * (q - zero)


def find_params(w, maxq):
    xmin = torch.minimum(w.min(1).values, torch.zeros(w.shape[0]))
    xmax = torch.maximum(w.max(1).values, torch.zeros(w.shape[0]))
    both = (xmin == 0) & (xmax == 0)
    xmin[both], xmax[both] = -1, 1
    scale = (xmax - xmin) / maxq
    zero = torch.round(-xmin / scale)
    return scale.unsqueeze(1), zero.unsqueeze(1)


def gptq(W, H, bits=4, group=128, block=128, percdamp=0.01):
    W = W.clone()
    maxq = 2**bits - 1
    rows, cols = W.shape
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H += torch.eye(cols) * (percdamp * torch.mean(torch.diag(H)))
    U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    Q = torch.zeros_like(W)
    scale = zero = None
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        W1 = W[:, i1:i2].clone()
        E1 = torch.zeros_like(W1)
        U1 = U[i1:i2, i1:i2]
        for i in range(i2 - i1):
            if (i1 + i) % group == 0:
                scale, zero = find_params(W[:, i1 + i:i1 + i + group], maxq)
            w, d = W1[:, i], U1[i, i]
            q = quantize(w.unsqueeze(1), scale, zero, maxq).flatten()
            Q[:, i1 + i] = q
            e = (w - q) / d
            W1[:, i:] -= e.unsqueeze(1).matmul(U1[i, i:].unsqueeze(0))
            E1[:, i] = e
        W[:, i2:] -= E1.matmul(U[i1:i2, i2:])
    return Q


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--cols", type=int, default=4096)
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    W = torch.randn(a.rows, a.cols, generator=g)
    H = torch.zeros(a.cols, a.cols)
    xs = []
    hessian_s = 0.0  # the updates only, not drawing the random tokens
    for n in range(a.samples):
        x = torch.randn(a.seqlen, a.cols, generator=g)
        if n < 2:
            xs.append(x)
        t = time.perf_counter()
        H *= n / (n + 1)
        x = math.sqrt(2 / (n + 1)) * x.t()
        H += x.matmul(x.t())
        hessian_s += time.perf_counter() - t
    t1 = time.perf_counter()
    Q = gptq(W, H)
    t2 = time.perf_counter()
    X = torch.cat(xs)
    ref = X.matmul(W.t())
    err = float(((ref - X.matmul(Q.t())) ** 2).sum() / (ref**2).sum())
    print(json.dumps({"torch": torch.__version__, "threads": a.threads, "hessian_s": hessian_s,
                      "gptq_s": t2 - t1, "rel_error": err}))


if __name__ == "__main__":
    main()
