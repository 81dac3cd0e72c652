// Backend selection (src/model/backend): the auto order and its fall-through,
// named backends failing loudly instead of falling back, the cpu warning, the
// environment variable, and the real wasm backend on every core.
import { existsSync } from 'node:fs';
import t from 'tap';
import * as tf from '@tensorflow/tfjs-core';
import {
  type BackendInfo, type ResolvedBackend, CPU_SLOWDOWN_VS_WASM, backendInfo, chooseBackend, defaultThreads, describeBackend, initBackend,
} from '../src/model/backend/index.js';
import { addonPath, nativeUnavailable } from '../src/model/backend/native.js';
import { UsageError } from '../src/cli/command.js';

const info = (name: ResolvedBackend): BackendInfo => ({ name, threads: 1, simd: name === 'wasm', tfjs: '4.22.0' });

/** A loader where only `working` load; records what was tried. */
function fakeLoader(working: ResolvedBackend[]) {
  const tried: ResolvedBackend[] = [];
  const loader = async (name: ResolvedBackend) => {
    tried.push(name);
    if (!working.includes(name)) throw new Error(`Cannot find package '@tensorflow/${name}'\n(stack)`);
    return info(name);
  };
  return { tried, loader };
}

t.test('auto takes the first that loads: tfjs-node-gpu, tfjs-node, wasm, cpu', async (t) => {
  const logs: string[] = [];
  const a = fakeLoader(['tfjs-node', 'wasm', 'cpu']);
  t.equal((await chooseBackend('auto', a.loader, (l) => logs.push(l))).name, 'tfjs-node');
  t.same(a.tried, ['tfjs-node-gpu', 'tfjs-node']);
  const b = fakeLoader(['wasm', 'cpu']);
  t.equal((await chooseBackend('auto', b.loader, (l) => logs.push(l))).name, 'wasm');
  t.same(b.tried, ['tfjs-node-gpu', 'tfjs-node', 'wasm']);
  t.same(logs, ['casl: tensor backend tfjs-node (1 thread)', 'casl: tensor backend wasm (SIMD, 1 thread)'], 'one line per choice');
});

t.test('falling through to cpu warns how much slower it is, and why', async (t) => {
  const logs: string[] = [];
  const c = fakeLoader(['cpu']);
  t.equal((await chooseBackend('auto', c.loader, (l) => logs.push(l))).name, 'cpu');
  t.equal(logs.length, 2);
  t.match(logs[1], new RegExp(`warning: .*cpu backend .*about ${CPU_SLOWDOWN_VS_WASM}× slower than wasm`));
  t.match(logs[1], /not loaded: tfjs-node-gpu: Cannot find package/);
  t.notMatch(logs[1], /stack/, 'only the first line of each failure');
});

t.test('a named backend that does not load is an error, never a fallback', async (t) => {
  const d = fakeLoader(['wasm', 'cpu']);
  await t.rejects(chooseBackend('tfjs-node', d.loader, () => {}), { name: 'UsageError', message: /backend 'tfjs-node' did not load: Cannot find package/ });
  t.same(d.tried, ['tfjs-node'], 'nothing else was tried');
  await t.rejects(chooseBackend('auto', fakeLoader([]).loader, () => {}), /no tensor backend loaded: tfjs-node-gpu: .*cpu: /);
});

t.test('the real wasm backend: named by CASL_BACKEND, threaded build on 2 threads, chosen once', async (t) => {
  const before = [process.env.CASL_BACKEND, process.env.CASL_THREADS, process.env.CASL_WASM_THREADS];
  process.env.CASL_BACKEND = 'wasm';
  process.env.CASL_THREADS = '2';
  // The threaded wasm build even beside native kernels (which would otherwise put wasm on one thread).
  process.env.CASL_WASM_THREADS = '2';
  const logs: string[] = [];
  const got = await initBackend(undefined, { log: (l) => logs.push(l) });
  // process.env turns undefined into the string 'undefined': delete instead.
  for (const [k, v] of [['CASL_BACKEND', before[0]], ['CASL_THREADS', before[1]], ['CASL_WASM_THREADS', before[2]]] as const) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  t.equal(got.name, 'wasm');
  t.equal(tf.getBackend(), 'wasm');
  t.equal(got.simd, true, 'the SIMD build runs');
  t.equal(got.threads, 2, 'XNNPACK runs on 2 threads in Node (the threaded build, loaded by casl)');
  t.equal(logs.length, 1, 'one line names the backend');
  if (existsSync(addonPath()) && process.env.CASL_NATIVE !== '0') {
    t.ok(got.native, `the built native kernels are in use (${nativeUnavailable() ?? ''})`);
    t.match(describeBackend(got), /^wasm\+native \(SIMD, 2 threads; native \w+, \d+ threads?\)$/, 'and named in the description');
    t.same(logs, [`casl: tensor backend ${describeBackend(got)}`]);
  } else {
    t.equal(got.native, undefined);
    t.same(logs, [`casl: tensor backend ${describeBackend(got)} (native convolutions off: ${got.nativeOff})`], 'the log says why native kernels are off');
    t.equal(got.nativeOff, nativeUnavailable());
  }
  t.equal(backendInfo(), got);
  t.equal(await initBackend('wasm'), got, 'a second call returns the first choice');
  await t.rejects(initBackend('cpu'), { name: 'UsageError', message: /already runs on 'wasm'/ });
  // The threaded build computes what the reference backend does.
  const x = tf.randomNormal([2, 17, 17, 8], 0, 1, 'float32', 7) as tf.Tensor4D;
  const w = tf.randomNormal([3, 3, 8, 16], 0, 1, 'float32', 8) as tf.Tensor4D;
  const onWasm = tf.conv2d(x, w, 2, 1).dataSync();
  await tf.setBackend('cpu');
  const onCpu = tf.conv2d(x, w, 2, 1).dataSync();
  await tf.setBackend('wasm');
  let err = 0;
  for (let i = 0; i < onCpu.length; i++) err = Math.max(err, Math.abs(onWasm[i] - onCpu[i]));
  t.ok(err < 1e-4, `threaded conv2d agrees with cpu (max |Δ| ${err.toExponential(1)})`);
  // casl's gradient kernels read and write the wasm heap from JS: check them on the threaded build's shared memory too.
  const grads = () => tf.tidy(() => tf.grads((a: tf.Tensor, b: tf.Tensor) =>
    tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 1))))([x, w]).map((g) => Float32Array.from(g.dataSync())));
  const gWasm = grads();
  await tf.setBackend('cpu');
  const gCpu = grads();
  await tf.setBackend('wasm');
  for (const [i, name] of ['dx', 'dW'].entries()) {
    let scale = 0, e = 0;
    for (let j = 0; j < gCpu[i].length; j++) {
      scale = Math.max(scale, Math.abs(gCpu[i][j]));
      e = Math.max(e, Math.abs(gWasm[i][j] - gCpu[i][j]));
    }
    t.ok(e / scale < 1e-5, `threaded ${name} agrees with cpu (relative ${(e / scale).toExponential(1)})`);
  }
  tf.dispose([x, w]);
});

t.test('threads: one per core, whatever the load', async (t) => {
  t.equal(defaultThreads(2), 2);
  t.equal(defaultThreads(8), 8);
  t.equal(defaultThreads(1), 1);
  t.equal(defaultThreads(0), 1);
});

t.test('unknown names say what to use', async (t) => {
  await t.rejects(initBackend('gpu'), new UsageError(`--backend: unknown backend 'gpu'; use one of auto, tfjs-node-gpu, tfjs-node, wasm, cpu`));
});
