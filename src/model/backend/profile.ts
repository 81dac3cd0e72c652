// Where a computation's time goes, per kernel: tf.profile's record of every
// kernel call, summed by kernel name. On wasm (synchronous kernels) a call's
// time is its wall time; on async backends it is what the backend reports.
import * as tf from '@tensorflow/tfjs-core';

export interface KernelTime {
  kernel: string;
  ms: number;
  calls: number;
}

/** Runs `f` once under tf.profile; kernels by total time, largest first, and the profiled wall time. */
export async function profileKernels(f: () => void | Promise<void>): Promise<{ kernels: KernelTime[]; wallMs: number }> {
  const t0 = performance.now();
  const info = await tf.profile(f as () => tf.TensorContainer);
  const wallMs = performance.now() - t0;
  const byName = new Map<string, KernelTime>();
  for (const k of info.kernels) {
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    const e = byName.get(k.name) ?? { kernel: k.name, ms: 0, calls: 0 };
    e.ms += ms;
    e.calls += 1;
    byName.set(k.name, e);
  }
  return { kernels: [...byName.values()].sort((a, b) => b.ms - a.ms), wallMs };
}
