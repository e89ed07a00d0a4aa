// Private helpers shared by the kernel files: backend resolution and argument checks.
import { type Backend, selectBackend } from "../../ffi/mod.ts";

export type { Backend };

/** Options every kernel takes. */
export interface KernelOptions {
  /** Force a backend; default: `LMKIT_BACKEND`, else the best available. */
  backend?: Backend;
}

export function resolve(options: KernelOptions): Backend {
  return selectBackend(options.backend);
}
