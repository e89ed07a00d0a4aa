// One training step of the bundled tinyllama-bytes (`deno task bench-train`): forward, backward,
// global-norm clipping and AdamW on 8 × 256 tokens of real text, on the cpu backend, against the
// PyTorch CPU eager peer (bench/torch_train_peer.py: same model, same batch, same hyperparameters,
// same thread count) run as a child process in the same run when python3 with torch is present.
// Prints tokens/s of each, the ratio, and the peak resident memory of each process (ru_maxrss: run
// this file alone, as the task does, for our figure to be the step's and not other benches').
import { availableBackends, cpu, libraryInfo } from "../ffi/mod.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { batchFromSequences } from "../lib/train/data.ts";
import { LlamaParams } from "../lib/train/params.ts";
import { Trainer } from "../lib/train/trainer.ts";
import { textWindows } from "../tests/_util.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const MODEL = `${ROOT}data/models/tinyllama-bytes`;
const B = 8, T = 256, BOS = 256;

/** The peer's batch: 8 windows of 257 tokens of pud_en.jsonl (tests/_util.ts textWindows). */
function peerBatch() {
  return batchFromSequences(textWindows(B, T + 1));
}

/** Peak resident memory of this process (getrusage via the cpu library's lk_info). */
function peakRssMiB(): number {
  return Number(libraryInfo(cpu()).peakRssKiB) / 1024;
}

const cpuOk = availableBackends().cpu.ok;
const info = cpuOk ? libraryInfo(cpu()) : {};
const threads = Number(info.threads ?? navigator.hardwareConcurrency);
const times: number[] = [];
let losses: number[] = [];

if (cpuOk) {
  const model = await LlamaModel.load(MODEL, { backend: "cpu" });
  const batch = peerBatch();
  const trainer = new Trainer(LlamaParams.fromModel(model), [[BOS, BOS]], {
    steps: 1000,
    microBatch: B,
    lr: 1e-3,
    minLr: 1e-3,
    warmup: 0,
    clip: 1,
    weightDecay: 0.1,
  }, { backend: "cpu" });
  Deno.bench({
    name: `train step 8 × 256 tokens, forward + backward + clip + AdamW (cpu, ${threads} threads)`,
    n: 5,
    warmup: 2,
    fn(b) {
      b.start();
      const t = performance.now();
      const r = trainer.trainStepOn([batch]);
      times.push(performance.now() - t);
      b.end();
      losses.push(r.loss);
    },
  });
}

async function runPeer(): Promise<Record<string, number | string> | string> {
  try {
    const out = await new Deno.Command("/usr/bin/python3", {
      args: [`${ROOT}bench/torch_train_peer.py`, "--threads", String(threads), "--steps", "5"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
    if (!out.success) {
      return `the PyTorch peer failed: ${
        new TextDecoder().decode(out.stderr).trim().split("\n").at(-1)
      }`;
    }
    return JSON.parse(text);
  } catch (e) {
    return `the PyTorch peer did not run (${
      (e as Error).message
    }); it needs /usr/bin/python3 with torch (Debian python3-torch) and --allow-run=/usr/bin/python3`;
  }
}

globalThis.addEventListener("unload", () => {
  // unload handlers cannot await: the peer runs synchronously here
  const timed = times.slice(-5); // the last 5: deno bench's warm-up calls come first
  const ours = timed.length ? [...timed].sort((a, b) => a - b)[Math.floor(timed.length / 2)]! : NaN;
  const oursRate = B * T / ours * 1000;
  console.log(
    `\ntrain step 8 × 256 tokens, ${threads} threads, BLAS ${info.blas ?? "none (own kernels)"}`,
  );
  console.log(
    `  lmkit cpu       ${oursRate.toFixed(0).padStart(6)} tokens/s  (median ${
      (ours / 1000).toFixed(2)
    } s/step over ${timed.length}; first loss ${losses[0]?.toFixed(4)})  peak RSS ${
      cpuOk ? peakRssMiB().toFixed(0) : "?"
    } MiB`,
  );
  const peer = peerResult;
  if (typeof peer === "string") {
    console.log(`  PyTorch eager   ${peer}`);
    return;
  }
  const rate = Number(peer.tokens_per_s);
  console.log(
    `  PyTorch ${peer.torch} ${rate.toFixed(0).padStart(6)} tokens/s  (median ${
      Number(peer.median_s_per_step).toFixed(2)
    } s/step; first loss ${Number(peer.first_loss).toFixed(4)})  peak RSS ${
      Number(peer.peak_rss_mib).toFixed(0)
    } MiB`,
  );
  console.log(`  ratio lmkit / PyTorch: ${(oursRate / rate).toFixed(2)}×`);
  losses = [];
});

// the peer runs before the benches so that its figures are ready for the summary
const peerResult = await runPeer();
