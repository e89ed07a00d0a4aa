"""CPU peers for the kernel benchmarks: NumPy (with whatever BLAS/LAPACK it is linked to) on the
same machine. Run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, like `deno task bench`:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 bench/numpy_peer.py
Prints best-of-3 times: sgemm 1024³ and 2048³, and the OBS preparation of SparseGPT at 4096
(cholesky, inverse, cholesky) in f64, plus LAPACK's dpotrf + dpotri route where SciPy exists."""
import time
import numpy as np


def best(f, reps=3):
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return min(ts)


rng = np.random.default_rng(0)
for n in (1024, 2048):
    a = rng.standard_normal((n, n), dtype=np.float32); b = rng.standard_normal((n, n), dtype=np.float32)
    t = best(lambda: a @ b)
    print(f"numpy sgemm {n}^3: {t*1e3:.1f} ms, {2*n**3/t/1e9:.1f} GFLOP/s")
n = 4096
x = rng.standard_normal((2 * n, n))
H = x.T @ x / n
H[np.diag_indices(n)] += 0.01 * np.mean(np.diag(H))


def sparsegpt_route():
    L = np.linalg.cholesky(H)
    Linv = np.linalg.inv(L)
    Hinv = Linv.T @ Linv            # torch.cholesky_inverse(L)
    return np.linalg.cholesky(Hinv).T


t = best(sparsegpt_route, reps=2)
print(f"numpy OBS prepare f64 {n}: {t:.2f} s (cholesky, inv, Linvᵀ·Linv, cholesky)")
t = best(lambda: np.linalg.cholesky(np.linalg.inv(H)).T, reps=2)
print(f"numpy cholesky(inv(H)) f64 {n}: {t:.2f} s")
try:
    from numpy.__config__ import show
except Exception:
    pass
