// The wasm backend with both cores. tfjs-backend-wasm ships a threaded SIMD
// build (XNNPACK on a pthreadpool) but never uses it in Node:
//   1. its WASM_HAS_MULTITHREAD_SUPPORT flag is hard-wired false under Node
//      (tfjs issue 3830);
//   2. its loader hands Emscripten the pthread worker script as a Blob URL,
//      which Node's worker_threads cannot start;
//   3. the C++ side caps the pool at emscripten_num_logical_cores() / 2 —
//      os.cpus().length / 2, i.e. 1 thread on a 2-core machine — whatever
//      setThreadsCount asks for.
// So casl instantiates the threaded build itself: the worker script written
// to a real file, the main script given as a path the workers import, and
// os.cpus() reporting twice the cores while the module's static
// initialisers run, so that the cap is the real core count. The result is
// the package's own BackendWasm class, registered under the name 'wasm', so
// every wasm kernel (and casl's, src/model/backend/kernels.ts) applies.
import { createRequire } from 'node:module';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as wasmBackend from '@tensorflow/tfjs-backend-wasm';

const require = createRequire(import.meta.url);
const WASM_OUT = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'wasm-out');
const THREADED_JS = path.join(WASM_OUT, 'tfjs-backend-wasm-threaded-simd.js');
const THREADED_WASM = path.join(WASM_OUT, 'tfjs-backend-wasm-threaded-simd.wasm');

/** The Emscripten module of the threaded build, as BackendWasm expects it. */
type WasmModule = Record<string, unknown> & { cwrap: (...a: unknown[]) => unknown; tfjs?: Record<string, unknown> };
type Factory = (cfg: Record<string, unknown>) => Promise<WasmModule>;

/** Writes the pthread worker script once per content (atomically: several casl processes may start at once). */
function workerScript(): string {
  const { wasmWorkerContents } = require(path.join(WASM_OUT, 'tfjs-backend-wasm-threaded-simd.worker.js')) as { wasmWorkerContents: string };
  // The package keeps it as a template literal whose "\n" escapes became real newlines inside strings.
  const text = wasmWorkerContents.replace(/\n/g, '\\n');
  const file = path.join(os.tmpdir(), `casl-tfjs-wasm-${wasmBackend.version_wasm}-worker.cjs`);
  if (!existsSync(file) || readFileSync(file, 'utf8') !== text) {
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, text);
    renameSync(tmp, file);
  }
  return file;
}

async function instantiateThreaded(threads: number): Promise<WasmModule> {
  const factory = require(THREADED_JS) as Factory;
  const worker = workerScript();
  const cpus = os.cpus;
  os.cpus = () => [...cpus.call(os), ...cpus.call(os)];
  let mod: WasmModule;
  try {
    mod = await factory({
      locateFile: (p: string, prefix: string) => (p.endsWith('.worker.js') ? worker : p.endsWith('.wasm') ? THREADED_WASM : prefix + p),
      mainScriptUrlOrBlob: THREADED_JS,
    });
  } finally {
    os.cpus = cpus;
  }
  // The same bridge tfjs-backend-wasm's own init() builds.
  mod.tfjs = {
    init: mod.cwrap('init', null, []),
    initWithThreadsCount: mod.cwrap('init_with_threads_count', null, ['number']),
    getThreadsCount: mod.cwrap('get_threads_count', 'number', []),
    registerTensor: mod.cwrap('register_tensor', null, ['number', 'number', 'number']),
    disposeData: mod.cwrap('dispose_data', null, ['number']),
    dispose: mod.cwrap('dispose', null, []),
  };
  wasmBackend.setThreadsCount(threads);
  return mod;
}

/**
 * Replaces the 'wasm' backend's factory with the threaded build on `threads`
 * threads (call before the backend is first used). With threads = 1 the
 * package's own single-threaded SIMD build stays.
 */
export function useThreadedWasm(threads: number): void {
  if (threads <= 1) return;
  tf.removeBackend('wasm');
  tf.registerBackend('wasm', async () => {
    const mod = await instantiateThreaded(threads);
    const backend = new wasmBackend.BackendWasm(mod as unknown as ConstructorParameters<typeof wasmBackend.BackendWasm>[0]);
    // XNNPACK's pool threads now wait for work for the life of the process;
    // Emscripten keeps their workers referenced, which would stop Node from
    // ever exiting on its own.
    for (const w of (mod.PThread as { runningWorkers: { unref(): void }[] }).runningWorkers) w.unref();
    return backend;
  }, 2);
}

/** Threads XNNPACK actually runs on (after the backend initialised). */
export function wasmThreads(): number {
  return wasmBackend.getThreadsCount();
}

export async function wasmSimd(): Promise<boolean> {
  return (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) as boolean;
}
