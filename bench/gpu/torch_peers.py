"""PyTorch peers for bench/gpu/gpu_check.ts: the same ops on the same card, median of 10 timed
runs after a warm-up (CUDA events). Prints and writes {"<op>|<shape>": ms}. TF32 is off so that
f32 matmul is full f32, like ours.

--device cpu runs the same peers on PyTorch's CPU backend (wall-clock timing), for the same-machine
SparseGPT figure of issue 4 and to try this script where there is no GPU:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/gpu/torch_peers.py --device cpu --sparse"""
import json, sys, time
import torch

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
quick = "--quick" in sys.argv
out = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else None
N = 1024 if quick else 4096
dev = sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else "cuda"
if dev not in ("cuda", "cpu"):
    sys.exit(f"torch_peers.py: unknown --device '{dev}', expected cuda or cpu")
if dev == "cpu":
    torch.set_num_threads(int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 2)


def sync():
    if dev == "cuda":
        torch.cuda.synchronize()


def bench(fn, prep=None, reps=10):
    if dev == "cpu":
        reps = min(reps, 3)  # seconds, not milliseconds, per call on two cores
    if prep: prep()
    fn(); sync()
    ts = []
    for _ in range(reps):
        if prep: prep()
        if dev == "cpu":
            t0 = time.perf_counter(); fn(); ts.append((time.perf_counter() - t0) * 1e3)
            continue
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        sync(); s.record(); fn(); e.record(); sync()
        ts.append(s.elapsed_time(e))
    ts.sort()
    return ts[len(ts) // 2]


res = {}
torch.manual_seed(0)  # the same inputs, hence the same routed split, in every run
# --sparse: only the issue-4 peers (SparseGPT, the routed layer), for a short device lease
sparse_only = "--sparse" in sys.argv


def kernel_peers():
    a = torch.randn(N, N, device=dev); b = torch.randn(N, N, device=dev)
    res[f"matmul A·B f32|{N}³"] = bench(lambda: a @ b)
    res[f"matmul A·Bᵀ f32|{N}³"] = bench(lambda: a @ b.T)
    x = torch.randn(2 * N, N, device=dev)
    res[f"gram XᵀX, f32 H|X {2*N}×{N}"] = bench(lambda: x.T @ x)
    xd = x.double()
    res[f"gram XᵀX, f64 H|X {2*N}×{N}"] = bench(lambda: (lambda y: y.T @ y)(x.double()))
    for n in ([1024] if quick else [1024, 4096]):
        y = torch.randn(2 * n, n, device=dev, dtype=torch.float64)
        H = y.T @ y / n

        def sparsegpt_prep():  # IST-DASLab/sparsegpt: cholesky, cholesky_inverse, cholesky(upper)
            Hd = H.clone()
            damp = 0.01 * torch.mean(torch.diag(Hd))
            idx = torch.arange(n, device=dev)
            Hd[idx, idx] += damp
            L = torch.linalg.cholesky(Hd)
            Hinv = torch.cholesky_inverse(L)
            return torch.linalg.cholesky(Hinv, upper=True)
        res[f"obs prepare f64|H {n}×{n}"] = bench(sparsegpt_prep, reps=5)


if not sparse_only and "--quik" not in sys.argv:
    kernel_peers()


def sparsegpt_layer(w, batches, sparsity, bs=128, percdamp=0.01):
    """SparseGPT on one layer as the paper and IST-DASLab/sparsegpt run it, in f32 on the GPU:
    H accumulated batch by batch, damping, the upper Cholesky factor of H⁻¹, 128-column blocks
    with a per-block mask and error compensation, lazy updates of the later columns."""
    n = w.shape[1]
    H = torch.zeros(n, n, device=dev)
    seen = 0
    for x in batches:
        H *= seen / (seen + x.shape[0])
        seen += x.shape[0]
        y = (2 / seen) ** 0.5 * x
        H += y.T @ y
    W = w.clone()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H[torch.arange(n), torch.arange(n)] += percdamp * torch.mean(torch.diag(H))
    U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    for i1 in range(0, n, bs):
        i2 = min(i1 + bs, n)
        W1, U1 = W[:, i1:i2].clone(), U[i1:i2, i1:i2]
        Err1 = torch.zeros_like(W1)
        score = W1 ** 2 / torch.diag(U1).reshape(1, -1) ** 2
        mask1 = score <= torch.sort(score.flatten())[0][int(score.numel() * sparsity)]
        for i in range(i2 - i1):
            q = W1[:, i].clone()
            q[mask1[:, i]] = 0
            e = (W1[:, i] - q) / U1[i, i]
            W1[:, i:] -= e.unsqueeze(1) @ U1[i, i:].unsqueeze(0)
            W1[:, i] = q
            Err1[:, i] = e
        W[:, i1:i2] = W1
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    return W


def sparsegpt_peers():
    out = {}
    for n, seqs, toks in ([(1024, 16, 512)] if quick else [(4096, 128, 512)]):
        w0 = torch.randn(n, n, device=dev) * 0.02
        xb = [torch.randn(toks, n, device=dev) for _ in range(seqs)]
        out[f"sparsegpt layer 50% (Hessian + prune)|{n}×{n}, {seqs}×{toks} tokens"] = bench(
            lambda: sparsegpt_layer(w0, xb, 0.5), reps=3)
    return out


# each group of peers on its own: a failure is reported and the others are kept
for group in (sparsegpt_peers,):
    try:
        res.update(group())
    except Exception as e:  # noqa: BLE001
        print(f"{group.__name__} failed: {e}", file=sys.stderr)

# The routed Sparse Expansion layer at Llama-2-70B MLP shapes (issue 4): M = 4096 tokens, 16
# experts, bf16. Dense baseline: one cuBLAS GEMM over all tokens. Routed: the router (projection
# to d/32, nearest of 16 centroids) then per cluster a gather, the expert's product and a scatter,
# with the experts (a) dense (the authors' way) and (b) 2:4 through PyTorch's semi-structured
# sparse tensors (cuSPARSELt/CUTLASS on the sparse tensor cores). The 16 experts share one weight
# (each is still a separate pass over it: 470 MB ≫ L2).
def routed_peers():
    import torch.nn.functional as F
    try:
        from torch.sparse import to_sparse_semi_structured
    except ImportError:
        to_sparse_semi_structured = None
        print(f"semi-structured 2:4 unavailable: PyTorch {torch.__version__} has no to_sparse_semi_structured", file=sys.stderr)
    M, E = (1024, 16) if quick else (4096, 16)
    # on the CPU in f32, the precision of lmkit's cpu routed layer (bench/sparse_routed_bench.ts)
    dtype, dense_label = (torch.bfloat16, "bf16 cuBLAS") if dev == "cuda" else (torch.float32, "f32 PyTorch CPU")
    out = {}
    for name, din, dout in [("up", 8192, 28672), ("down", 28672, 8192)]:
        if quick:
            din, dout = din // 4, dout // 4
        shape = f"{name} {din}→{dout}, M={M}, {E} experts"
        x = torch.randn(M, din, device=dev, dtype=dtype)
        w = torch.randn(dout, din, device=dev, dtype=dtype)
        out[f"routed: dense {dense_label}, all tokens|{shape}"] = bench(lambda: F.linear(x, w))
        r = din // 32
        comp = torch.randn(r, din, device=dev, dtype=dtype) / din ** 0.5
        # centroids fitted by k-means on these tokens as Sparse Expansion fits them (and as
        # gpu_check.ts and bench/sparse_routed_bench.ts do on the host, lib/sparse/router.ts):
        # k-means++ initialisation, then Lloyd steps until no label changes (at most 100)
        zf = F.linear(x, comp).float()
        gen = torch.Generator(device=dev).manual_seed(5)
        cent = zf[torch.randint(M, (1,), device=dev, generator=gen)]
        d2 = torch.cdist(zf, cent).squeeze(1) ** 2
        for _ in range(E - 1):
            c = zf[torch.multinomial(d2, 1, generator=gen)]
            cent = torch.cat([cent, c])
            d2 = torch.minimum(d2, torch.cdist(zf, c).squeeze(1) ** 2)
        lab = torch.cdist(zf, cent).argmin(dim=1)
        for _ in range(100):
            cnt = torch.bincount(lab, minlength=E)
            new = torch.zeros_like(cent).index_add_(0, lab, zf) / cnt.clamp(min=1).unsqueeze(1).float()
            cent = torch.where(cnt.unsqueeze(1) > 0, new, cent)
            lab, prev = torch.cdist(zf, cent).argmin(dim=1), lab
            if torch.equal(lab, prev):
                break
        sizes = torch.bincount(lab, minlength=E)
        print(f"{shape}: peer split {int(sizes.min())}…{int(sizes.max())} tokens per expert", file=sys.stderr)
        g = w.view(dout, din // 4, 4)
        keep = g.abs().topk(2, dim=2).indices
        w24 = torch.zeros_like(g).scatter_(2, keep, g.gather(2, keep)).view(dout, din)

        def layer(expert):
            z = F.linear(x, comp)
            labels = torch.cdist(z.float(), cent).argmin(dim=1)
            y = torch.empty(M, dout, device=dev, dtype=dtype)
            for c in range(E):
                idx = (labels == c).nonzero().squeeze(1)
                if idx.numel() == 0:
                    continue
                xc = x.index_select(0, idx)
                yc = F.linear(xc, expert)  # a semi-structured weight dispatches to its sparse kernel
                y.index_copy_(0, idx, yc)
            return y
        out[f"routed: dense experts (gather per cluster)|{shape}"] = bench(lambda: layer(w24))
        if to_sparse_semi_structured is not None:
            try:
                ws = to_sparse_semi_structured(w24)
                out[f"routed: 2:4 experts|{shape}"] = bench(lambda: layer(ws))
                xs = x[: M // E].contiguous()
                out[f"one expert 2:4, {M // E} tokens|{shape}"] = bench(lambda: F.linear(xs, ws))
                out[f"one expert dense bf16, {M // E} tokens|{shape}"] = bench(lambda: F.linear(xs, w24))
            except Exception as e:  # noqa: BLE001 (report, keep the other peers)
                print(f"semi-structured 2:4 unavailable: {e}", file=sys.stderr)
    return out


def quik_peers():
    """bf16 linear and int8 torch._int_mm (cuBLASLt) of the QUIK rows' shapes: m×k → n."""
    out = {}
    shapes = [(4096, 4096)] if quick else [(4096, 4096), (8192, 8192), (28672, 8192), (8192, 28672)]
    for n, k in shapes:
        w = torch.randn(n, k, device=dev).to(torch.bfloat16)
        wi = torch.randint(-8, 8, (k, n), device=dev, dtype=torch.int8)
        for m in (16, 2048, 4096):
            x = torch.randn(m, k, device=dev).to(torch.bfloat16)
            out[f"torch bf16 linear|{m}×{k}→{n}"] = bench(lambda: torch.nn.functional.linear(x, w))
            if m > 16 and hasattr(torch, "_int_mm"):  # needs m > 16
                xi = torch.randint(-8, 8, (m, k), device=dev, dtype=torch.int8)
                out[f"torch int8 _int_mm|{m}×{k}→{n}"] = bench(lambda: torch._int_mm(xi, wi))
        del w, wi
        torch.cuda.empty_cache() if dev == "cuda" else None
    return out


quik_only = "--quik" in sys.argv
if quik_only:
    res.clear()
try:
    if not sparse_only and dev == "cuda":
        res.update(quik_peers())
except Exception as e:  # noqa: BLE001
    print(f"quik_peers failed: {e}", file=sys.stderr)
if quik_only:
    print(json.dumps(res, indent=1))
    if out:
        with open(out, "w") as f: json.dump(res, f)
    sys.exit(0)
try:
    res.update(routed_peers())
except Exception as e:  # noqa: BLE001
    print(f"routed_peers failed: {e}", file=sys.stderr)
torch.cuda.empty_cache()
for r, c, frac in [] if sparse_only else [(N, N, 0.1), (1, (1 << 20) if quick else (1 << 24), 0.01)]:
    t = torch.randn(r, c, device=dev); k = max(1, round(c * frac))
    res[f"top-k |x| (index mismatches as error)|{r}×{c}, k={k}"] = bench(lambda: torch.topk(t.abs(), k, dim=1))
print(json.dumps(res, indent=1))
if out:
    with open(out, "w") as f: json.dump(res, f)
