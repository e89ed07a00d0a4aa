"""scipy peer for bench/wasserstein_bench.ts: scipy.stats.wasserstein_distance of 1,000,000
standardised samples against the N(0,1) quantile grid Φ⁻¹((k−½)/N), best of 5. The project does
not depend on Python; this is a measurement only:  /usr/bin/python3 bench/scipy_peer.py"""
import time
import numpy as np
import scipy
from scipy.stats import wasserstein_distance
from scipy.special import ndtri

rng = np.random.default_rng(11)
x = rng.standard_normal(1_000_000) ** 3
z = (x - x.mean()) / x.std()
q = ndtri((np.arange(1, z.size + 1) - 0.5) / z.size)
ts = []
for _ in range(5):
    t = time.perf_counter(); d = wasserstein_distance(z, q); ts.append(time.perf_counter() - t)
t = time.perf_counter(); qq = ndtri((np.arange(1, z.size + 1) - 0.5) / z.size); tq = time.perf_counter() - t
print(f"scipy {scipy.__version__}: wasserstein_distance(1M, 1M grid) best {min(ts)*1e3:.1f} ms (W1 = {d:.6f}); grid {tq*1e3:.1f} ms")
