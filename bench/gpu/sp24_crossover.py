"""Where do 2:4 weights on cuSPARSELt beat dense bf16 cuBLAS? One weight at Llama-2-70B MLP shapes,
the token count swept (an expert of the routed layer sees about M/16 tokens). PyTorch's own
cuSPARSELt binding (torch._cslt_compress / _cslt_sparse_mm, W as the sparse A operand: D = W·Xᵀ,
the layout lmkit's lk_cuda_sp24_matmul uses). Median of 20 timed products after 5 warm-ups.
Usage on a GPU machine: python3 bench/gpu/sp24_crossover.py"""
import sys

if len(sys.argv) > 1:
    print(__doc__, file=sys.stderr if sys.argv[1] not in ("-h", "--help") else sys.stdout)
    sys.exit(0 if sys.argv[1] in ("-h", "--help") else 2)
import torch  # noqa: E402 (after --help, which needs no GPU)

torch.manual_seed(0)
def median_ms(fn, reps=20):
    for _ in range(5):
        fn()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return sorted(times)[reps // 2]

print(torch.cuda.get_device_name(), "torch", torch.__version__)
print("| shape n×k | tokens M | dense ms | 2:4 ms | 2:4 speed-up | 2:4 tuned ms | tuned speed-up |")
print("|---|---|---|---|---|---|---|")
for n, k in [(28672, 8192), (8192, 28672)]:
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
    g = w.view(n, k // 4, 4)
    keep = g.abs().topk(2, dim=-1).indices
    w = torch.zeros_like(g).scatter(-1, keep, g.gather(-1, keep)).view(n, k)
    c = torch._cslt_compress(w)
    for m in [64, 256, 1024, 4096, 16384]:
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        xt = x.t()
        d = median_ms(lambda: torch.mm(x, w.t()))
        s = median_ms(lambda: torch._cslt_sparse_mm(c, xt))
        err = (torch._cslt_sparse_mm(c, xt).t().float() - (x @ w.t()).float()).norm() / (x @ w.t()).float().norm()
        try:
            alg = torch._cslt_sparse_mm_search(c, xt)
            t = median_ms(lambda: torch._cslt_sparse_mm(c, xt, alg_id=alg))
            tuned = f"{t:.3f} | {d / t:.2f}"
        except Exception as e:  # noqa: BLE001
            tuned = f"— | ({type(e).__name__})"
        print(f"| {n}×{k} | {m} | {d:.3f} | {s:.3f} | {d / s:.2f} | {tuned} |  rel err {err:.1e}", flush=True)
