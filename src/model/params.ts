// Parameter declarations shared by the model parts. Each part lists its
// parameters as specs (name, shape, how to initialise, which part it belongs
// to); detector.ts turns them into tf.Variables. Names follow the PyTorch
// reference's state_dict (`backbone.stem.0.weight`), so a parity bundle or a
// PyTorch export maps 1:1. Conv weights are HWIO [k, k, Cin, Cout].
import { Rng } from '../augment/rng.js';
import * as tf from '@tensorflow/tfjs-core';

/** The four parts a finetune may take from a checkpoint. */
export type Part = 'backbone' | 'neck' | 'head' | 'classifier';
export const PARTS: readonly Part[] = ['backbone', 'neck', 'head', 'classifier'];

export type Init =
  | { kind: 'he' } // N(0, √(2/fan_in)), fan_in = Cin·k·k
  | { kind: 'normal'; std: number }
  | { kind: 'const'; value: number };

export interface ParamSpec {
  name: string;
  shape: number[];
  init: Init;
  part: Part;
}

export type Params = Map<string, tf.Variable>;

export function convSpecs(name: string, k: number, cin: number, cout: number, part: Part, init: Init, bias: boolean): ParamSpec[] {
  const specs: ParamSpec[] = [{ name: `${name}.weight`, shape: [k, k, cin, cout], init, part }];
  if (bias) specs.push({ name: `${name}.bias`, shape: [cout], init: { kind: 'const', value: 0 }, part });
  return specs;
}

export function gnSpecs(name: string, c: number, part: Part): ParamSpec[] {
  return [
    { name: `${name}.weight`, shape: [c], init: { kind: 'const', value: 1 }, part },
    { name: `${name}.bias`, shape: [c], init: { kind: 'const', value: 0 }, part },
  ];
}

/** casl's seeded generator (mulberry32), so a seed gives the same weights on every backend. */
export function seededRandom(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}

/** Standard normal samples by Box–Muller. */
export function normalSamples(n: number, rand: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = 1 - rand();
    const v = rand();
    const r = Math.sqrt(-2 * Math.log(u));
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

/** The initial values of one parameter, as plain floats. */
export function initValues(spec: ParamSpec, rand: () => number): Float32Array {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const { init } = spec;
  if (init.kind === 'const') return new Float32Array(n).fill(init.value);
  const std = init.kind === 'he' ? Math.sqrt(2 / (spec.shape[0] * spec.shape[1] * spec.shape[2])) : init.std;
  const z = normalSamples(n, rand);
  for (let i = 0; i < n; i++) z[i] *= std;
  return z;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The variable `name`, or an error naming it (a part asked for a parameter the config did not declare). */
export function param<R extends tf.Rank>(params: Params, name: string): tf.Tensor<R> {
  const v = params.get(name);
  if (!v) throw new Error(`model parameter '${name}' is missing`);
  return v as unknown as tf.Tensor<R>;
}

/** Every parameter's values, in the map's order, in one buffer: how a detector's weights cross to a worker thread. */
export function flattenParams(params: Params): Float32Array {
  const vars = [...params.values()];
  const out = new Float32Array(vars.reduce((s, v) => s + v.size, 0));
  let offset = 0;
  for (const v of vars) {
    out.set(v.dataSync() as Float32Array, offset);
    offset += v.size;
  }
  return out;
}

/** The inverse of flattenParams: assigns each parameter its slice of `flat`, in the map's order; returns the values used. */
export function assignFlatParams(params: Params, flat: Float32Array): number {
  let offset = 0;
  for (const v of params.values()) {
    const t = tf.tensor(flat.subarray(offset, offset + v.size), v.shape);
    v.assign(t);
    t.dispose();
    offset += v.size;
  }
  return offset;
}
