// Chooses the tensor backend once per process: `--backend` / CASL_BACKEND,
// `auto` taking the first that loads of tfjs-node-gpu, tfjs-node (optional
// dependencies: their install downloads libtensorflow and fails offline),
// wasm (always installed) and the pure-JS cpu backend. An explicitly named
// backend that does not load is an error, never a silent fallback. The choice
// is logged once on stderr and kept in `backendInfo()` for checkpoints and
// output metadata.
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-backend-cpu';
import { UsageError } from '../../cli/command.js';
import { enableGradients } from '../gradients.js';
import { registerWasmKernels } from './kernels.js';
import { type NativeInfo, nativeUnavailable, useNativeKernels } from './native.js';
import { useThreadedWasm, wasmSimd, wasmThreads } from './wasm.js';

export const BACKENDS = ['auto', 'tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];
export type ResolvedBackend = Exclude<BackendName, 'auto'>;

export interface BackendInfo {
  /** The casl name: tfjs-node-gpu | tfjs-node | wasm | cpu. */
  name: ResolvedBackend;
  /** Threads the backend computes on (XNNPACK's pool for wasm). */
  threads: number;
  /** wasm only: whether the SIMD build runs. */
  simd: boolean;
  /** @tensorflow/tfjs-core version. */
  tfjs: string;
  /** wasm only: the native convolution kernels (native/conv) when they run, else absent. */
  native?: NativeInfo;
  /** wasm only: why the native kernels are not in use (not built, CASL_NATIVE=0, …). */
  nativeOff?: string;
}

/**
 * How much slower a tiny-fcos training step (B = 8, S = 128) is on the cpu
 * backend than on wasm, one thread each, in process CPU time: 208,575 ms
 * against 622 ms, measured one after the other on the 2-core machine
 * (README "Speed").
 */
export const CPU_SLOWDOWN_VS_WASM = 300;

// Registered at import so that any use of the wasm backend, even one that
// skips initBackend (a test calling tf.setBackend('wasm')), can train.
registerWasmKernels();

let current: BackendInfo | undefined;
let pending: Promise<BackendInfo> | undefined;

/** The backend chosen by initBackend, or undefined before it ran. */
export function backendInfo(): BackendInfo | undefined {
  return current;
}

/**
 * 'wasm (SIMD, 2 threads)', or with the native convolutions
 * 'wasm+native (SIMD, 2 threads; native avx512, 2 threads)' — the form
 * written into metadata and logs.
 */
export function describeBackend(info: BackendInfo): string {
  const threads = (n: number) => `${n} thread${n === 1 ? '' : 's'}`;
  if (info.name === 'wasm') {
    const native = info.native ? `; native ${info.native.isa}, ${threads(info.native.threads)}` : '';
    return `wasm${info.native ? '+native' : ''} (${info.simd ? 'SIMD' : 'no SIMD'}, ${threads(info.threads)}${native})`;
  }
  return `${info.name} (${info.threads} thread${info.threads === 1 ? '' : 's'})`;
}

function parseName(raw: string, where: string): BackendName {
  if (!(BACKENDS as readonly string[]).includes(raw)) {
    throw new UsageError(`${where}: unknown backend '${raw}'; use one of ${BACKENDS.join(', ')}`);
  }
  return raw as BackendName;
}

/**
 * wasm and native threads: CASL_THREADS, else one per core. The count does
 * not depend on the machine's load: a default read from the load average
 * gave one thread to a run that started right after a compile, and a run's
 * speed should not depend on what ran the minute before. XNNPACK's pool
 * forks and joins inside every kernel, so on cores shared with other jobs
 * CASL_THREADS=1 can be faster (README "Speed"); the tests set it.
 */
export function defaultThreads(cores = os.cpus().length): number {
  return Math.max(1, cores);
}

/** Threads from the environment variable `name`, else `fallback` (CASL_THREADS: else by the load). */
function wantedThreads(name = 'CASL_THREADS', fallback?: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback ?? defaultThreads();
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${name} must be a positive integer, got '${raw}'`);
  return n;
}

async function tryNode(pkg: string): Promise<void> {
  // A variable specifier keeps TypeScript from resolving a package that is usually absent.
  const spec = pkg;
  await import(spec);
  if (!tf.findBackendFactory('tensorflow')) {
    throw new Error(`${pkg} loaded but registered its backend with another copy of @tensorflow/tfjs-core: install matching versions (4.22.0)`);
  }
  if (!(await tf.setBackend('tensorflow'))) throw new Error(`${pkg}: the tensorflow backend failed to initialise`);
}

async function load(name: ResolvedBackend): Promise<BackendInfo> {
  const version = tf.version_core;
  switch (name) {
    case 'tfjs-node-gpu':
    case 'tfjs-node':
      await tryNode(`@tensorflow/${name}`);
      return { name, threads: os.cpus().length, simd: false, tfjs: version };
    case 'wasm': {
      const threads = wantedThreads();
      const simd = await wasmSimd();
      const native = useNativeKernels(threads);
      // With the native convolutions XNNPACK keeps only small ops, and its
      // pool's waiting threads spin: on 2 threads a tiny-fcos train step cost
      // 545 ms of CPU against 184 ms with wasm on one (native on 2 either
      // way; README "Speed"). CASL_WASM_THREADS overrides.
      const wasmWanted = wantedThreads('CASL_WASM_THREADS', native ? 1 : threads);
      // The threaded build needs SIMD; without it, the package's plain build on one thread.
      if (simd && !tf.engine().registry.wasm) useThreadedWasm(wasmWanted);
      if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend failed to initialise');
      return { name, threads: wasmThreads(), simd, tfjs: version, ...(native ? { native } : { nativeOff: nativeUnavailable() }) };
    }
    case 'cpu':
      if (!(await tf.setBackend('cpu'))) throw new Error('the cpu backend failed to initialise');
      return { name, threads: 1, simd: false, tfjs: version };
  }
}

/**
 * Tries `requested` (or, for auto, each backend in order) with `loader`:
 * the first that loads wins; a named backend that fails is a UsageError.
 * Logs the choice, and for cpu the slowdown warning.
 */
export async function chooseBackend(
  requested: BackendName,
  loader: (name: ResolvedBackend) => Promise<BackendInfo>,
  log: (line: string) => void,
): Promise<BackendInfo> {
  const order: ResolvedBackend[] = requested === 'auto' ? ['tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu'] : [requested];
  const failures: string[] = [];
  for (const candidate of order) {
    let info: BackendInfo;
    try {
      info = await loader(candidate);
    } catch (e) {
      const why = (e as Error).message.split('\n')[0];
      if (requested !== 'auto') throw new UsageError(`backend '${candidate}' did not load: ${why}`);
      failures.push(`${candidate}: ${why}`);
      continue;
    }
    log(`casl: tensor backend ${describeBackend(info)}${info.nativeOff ? ` (native convolutions off: ${info.nativeOff})` : ''}`);
    if (info.name === 'cpu') {
      log(`casl: warning: the pure-JS cpu backend trains tiny-fcos about ${CPU_SLOWDOWN_VS_WASM}× slower than wasm` +
        (failures.length ? ` (not loaded: ${failures.join('; ')})` : ''));
    }
    return info;
  }
  throw new Error(`no tensor backend loaded: ${failures.join('; ')}`);
}

/**
 * Selects and initialises the backend: `name`, else CASL_BACKEND, else auto.
 * Idempotent: later calls return the first choice (and fail if they ask for
 * a different one). `log` receives the one line naming it (stderr by default).
 */
export async function initBackend(
  name?: string,
  opts: { log?: (line: string) => void } = {},
): Promise<BackendInfo> {
  const requested = name !== undefined && name !== ''
    ? parseName(name, '--backend')
    : process.env.CASL_BACKEND ? parseName(process.env.CASL_BACKEND, 'CASL_BACKEND') : 'auto';
  if (current || pending) {
    const info = current ?? (await pending!);
    if (requested !== 'auto' && requested !== info.name) {
      throw new UsageError(`backend '${requested}' asked for, but this process already runs on '${info.name}'`);
    }
    return info;
  }
  const log = opts.log ?? ((line: string) => process.stderr.write(line + '\n'));
  pending = (async () => {
    // Every casl process that has a backend can also train.
    await enableGradients();
    return (current = await chooseBackend(requested, load, log));
  })();
  try {
    return await pending;
  } finally {
    pending = undefined;
  }
}
