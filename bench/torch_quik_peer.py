"""PyTorch CPU peers of one QUIK linear layer (a measurement only; the project does not depend on
Python): the dynamic int8 linear (torch.ao.quantization.quantize_dynamic: per-token int8
activations quantized on the fly, int8 weights, int32 accumulation; the 'fbgemm' engine where this
torch has it, else 'onednn', which Debian's python3-torch ships) and the f32 nn.Linear. Prints one
JSON line: {"engine": ..., "torch": ..., "rows": [{"out", "in", "tokens", "int8_ms", "f32_ms"}]},
the best of --reps calls after one warm-up.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/torch_quik_peer.py \
        --shapes 4096x4096,11008x4096 --tokens 256,2048 --threads 2
"""
import argparse
import json
import time

import torch


def best(fn, reps):
    fn()
    out = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - t)
    return out * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="4096x4096,11008x4096")  # out x in
    ap.add_argument("--tokens", default="256,512,1024,2048")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=4)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    engines = torch.backends.quantized.supported_engines
    engine = "fbgemm" if "fbgemm" in engines else "onednn" if "onednn" in engines else engines[0]
    torch.backends.quantized.engine = engine
    torch.manual_seed(0)
    rows = []
    with torch.no_grad():
        for shape in a.shapes.split(","):
            out_f, in_f = (int(v) for v in shape.split("x"))
            dense = torch.nn.Sequential(torch.nn.Linear(in_f, out_f, bias=False))
            q = torch.ao.quantization.quantize_dynamic(dense, {torch.nn.Linear}, dtype=torch.qint8)
            for m in (int(v) for v in a.tokens.split(",")):
                x = torch.randn(m, in_f)
                rows.append({
                    "out": out_f,
                    "in": in_f,
                    "tokens": m,
                    "int8_ms": best(lambda: q(x), a.reps),
                    "f32_ms": best(lambda: dense(x), a.reps),
                })
    print(json.dumps({"engine": engine, "torch": torch.__version__, "rows": rows}))


if __name__ == "__main__":
    main()
