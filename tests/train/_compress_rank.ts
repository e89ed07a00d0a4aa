// One rank of tests/train/compressed_test.ts's world: the quantize family's exchange
// (lib/train/compressors.ts) on seeded tensors for 3 calls; prints `rank R: call C sent B` lines
// and writes its results and residuals to --out.RANK.
//   mpirun -np N deno run --allow-ffi=ffi/build --allow-write=DIR tests/train/_compress_rank.ts --seed S --out DIR/r.bin
import { parseArgs } from "node:util";
import { createCommunicator } from "../../lib/comm/communicator.ts";
import { quantizeCompressor } from "../../lib/train/compressors.ts";
import { compressInput } from "./_compress_data.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { seed: { type: "string", default: "1" }, out: { type: "string" } },
});
using comm = createCommunicator("mpi");
const c = quantizeCompressor(Number(values.seed));
const outs: Uint8Array[] = [];
for (let call = 0; call < 3; call++) {
  const x = compressInput(Number(values.seed), call, comm.rank);
  const residual = new Float32Array(x.length);
  const sent = await c.exchange(comm, x, residual, { shape: [7, 1031], level: 3, key: "t" });
  outs.push(new Uint8Array(x.buffer), new Uint8Array(residual.buffer));
  console.log(`rank ${comm.rank}: call ${call} sent ${sent}`);
}
if (values.out) {
  const all = new Uint8Array(outs.reduce((a, b) => a + b.length, 0));
  let at = 0;
  for (const o of outs) all.set(o, (at += o.length) - o.length);
  Deno.writeFileSync(`${values.out}.${comm.rank}`, all);
}
