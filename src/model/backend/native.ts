// Optional native convolution kernels for the wasm backend (native/conv/,
// an N-API addon built by node-gyp with -march=native). They compute on the
// wasm heap in place — JS hands over the heap and each tensor's byte offset —
// and replace Conv2D, FusedConv2D (bias, relu or linear),
// Conv2DBackpropFilter and Conv2DBackpropInput (casl's wasm versions of
// these two, src/model/backend/kernels.ts, are registered at import, so the
// native ones must be registered after it), and BatchMatMul (GroupNorm's
// sums; XNNPACK repacks a matrix on every call). Everything else stays on
// wasm. When the addon is absent (not built, another CPU, CASL_NATIVE=0) the
// wasm kernels run as before.
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { backend_util } from '@tensorflow/tfjs-core';
import type { KernelBackend, KernelConfig, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';

interface Addon {
  conv2d(heap: Uint8Array, params: Float64Array): void;
  conv2dBackpropFilter(heap: Uint8Array, params: Float64Array): void;
  conv2dBackpropInput(heap: Uint8Array, params: Float64Array): void;
  batchMatMul(heap: Uint8Array, params: Float64Array): void;
  setThreads(n: number): void;
  info(): { isa: string; threads: number; lanes: number };
}

/** The parts of tfjs-backend-wasm's BackendWasm these kernels use. */
interface WasmBackend {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
}

export interface NativeInfo {
  /** The vector ISA the addon was compiled for: avx512, avx2 or sse. */
  isa: string;
  threads: number;
}

/** Where the addon is built: <package root>/native/conv/build/Release/casl_conv.node. */
export function addonPath(): string {
  // From src/model/backend (ts-node) or dist/src/model/backend (built): walk up to the package root.
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'native', 'conv', 'binding.gyp'))) {
    const up = path.dirname(dir);
    if (up === dir) return path.join('native', 'conv', 'build', 'Release', 'casl_conv.node');
    dir = up;
  }
  return path.join(dir, 'native', 'conv', 'build', 'Release', 'casl_conv.node');
}

let addon: Addon | undefined;
let loadError: string | undefined;

/** Loads the addon once; undefined (with the reason in nativeUnavailable()) when it cannot. */
export function loadAddon(): Addon | undefined {
  if (addon || loadError) return addon;
  if (process.env.CASL_NATIVE === '0') {
    loadError = 'disabled by CASL_NATIVE=0';
    return undefined;
  }
  const file = addonPath();
  if (!existsSync(file)) {
    loadError = `not built (${file} is missing; \`make native\` builds it)`;
    return undefined;
  }
  // Compiled with -march=native: on another CPU it could stop on an illegal instruction.
  const cpuFile = path.join(path.dirname(file), 'cpu.txt');
  const builtFor = existsSync(cpuFile) ? readFileSync(cpuFile, 'utf8') : undefined;
  const here = os.cpus()[0]?.model ?? 'unknown';
  if (builtFor !== here) {
    loadError = `${file} was built for ${builtFor === undefined ? 'an unknown CPU' : `'${builtFor}'`}, this is '${here}': \`make native\` rebuilds it`;
    return undefined;
  }
  try {
    addon = createRequire(import.meta.url)(file) as Addon;
  } catch (e) {
    loadError = `${file} did not load: ${(e as Error).message.split('\n')[0]}`;
  }
  return addon;
}

export function nativeUnavailable(): string | undefined {
  loadAddon();
  return loadError;
}

type Conv2DInfo = backend_util.Conv2DInfo;

function shapeParams(c: Conv2DInfo): number[] {
  return [c.batchSize, c.inHeight, c.inWidth, c.inChannels, c.filterHeight, c.filterWidth, c.outChannels,
    c.outHeight, c.outWidth, c.strideHeight, c.strideWidth, c.dilationHeight, c.dilationWidth,
    c.padInfo.top, c.padInfo.left];
}

function offset(b: WasmBackend, t: TensorInfo): number {
  return b.dataIdMap.get(t.dataId).memoryOffset;
}

interface ConvAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dilations: [number, number] | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  activation?: string;
}

type KernelArgs = { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs?: NamedAttrMap };

/**
 * A Conv2D / FusedConv2D kernel computing natively what it can (NHWC,
 * float32, no activation or relu, rank-1 bias) and handing the rest to the
 * wasm kernel it replaces.
 */
function convKernel(lib: Addon, original: KernelConfig): KernelConfig {
  const kernelFunc = (args: KernelArgs): TensorInfo => {
    const { inputs, backend } = args;
    const attrs = args.attrs as unknown as ConvAttrs;
    const { x, filter, bias, preluActivationWeights } = inputs as Record<string, TensorInfo | undefined>;
    const activation = attrs.activation ?? 'linear';
    const native = attrs.dataFormat !== 'NCHW' && x!.dtype === 'float32' && filter!.dtype === 'float32' &&
      (activation === 'linear' || activation === 'relu') && !preluActivationWeights &&
      (!bias || (bias.shape.length === 1 && bias.shape[0] === filter!.shape[3]));
    if (!native) return original.kernelFunc(args as never) as TensorInfo;
    const info = backend_util.computeConv2DInfo(x!.shape as [number, number, number, number],
      filter!.shape as [number, number, number, number], attrs.strides, attrs.dilations ?? 1, attrs.pad, attrs.dimRoundingMode);
    const wb = backend as unknown as WasmBackend;
    const out = wb.makeOutput(info.outShape, 'float32');
    if (out.shape.some((d) => d === 0) || x!.shape.some((d) => d === 0)) return out;
    lib.conv2d(wb.wasm.HEAPU8, Float64Array.from([...shapeParams(info),
      offset(wb, x!), offset(wb, filter!), bias ? offset(wb, bias) : -1, offset(wb, out), activation === 'relu' ? 1 : 0]));
    return out;
  };
  return { ...original, kernelFunc: kernelFunc as unknown as KernelConfig['kernelFunc'] };
}

/**
 * Conv2DBackpropFilter (inputs x, dy; the filter's shape in attrs) or
 * Conv2DBackpropInput (inputs dy, filter; the input's shape in attrs): the
 * addon takes the two inputs' offsets in that order, then the output's.
 */
function gradientKernel(kernelName: 'Conv2DBackpropFilter' | 'Conv2DBackpropInput', run: (heap: Uint8Array, params: Float64Array) => void): KernelConfig {
  const filterGrad = kernelName === 'Conv2DBackpropFilter';
  const kernelFunc = ({ inputs, backend, attrs }: KernelArgs): TensorInfo => {
    const ins = inputs as Record<string, TensorInfo>;
    const [first, second] = filterGrad ? [ins.x, ins.dy] : [ins.dy, ins.filter];
    const a = attrs as unknown as ConvAttrs & { filterShape?: number[]; inputShape?: number[] };
    if (a.dataFormat === 'NCHW') throw new Error(`casl native ${kernelName} supports NHWC only (dataFormat NCHW was asked for)`);
    const xShape = (filterGrad ? first.shape : a.inputShape!) as [number, number, number, number];
    const wShape = (filterGrad ? a.filterShape! : second.shape) as [number, number, number, number];
    const info = backend_util.computeConv2DInfo(xShape, wShape, a.strides, 1, a.pad, a.dimRoundingMode);
    const wb = backend as unknown as WasmBackend;
    const out = wb.makeOutput(filterGrad ? wShape : xShape, 'float32');
    run(wb.wasm.HEAPU8, Float64Array.from([...shapeParams(info), offset(wb, first), offset(wb, second), offset(wb, out)]));
    return out;
  };
  return { kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as KernelConfig['kernelFunc'] };
}

/**
 * BatchMatMul natively when the batch dimensions are equal or one side has a
 * single matrix (what wasm's own kernel supports too); anything else goes to
 * the wasm kernel.
 */
function batchMatMulKernel(lib: Addon, original: KernelConfig): KernelConfig {
  const kernelFunc = (args: KernelArgs): TensorInfo => {
    const { inputs, backend } = args;
    const { a, b } = inputs as { a: TensorInfo; b: TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
    const size = (s: number[]) => s.reduce((p, d) => p * d, 1);
    const ra = a.shape.length, rb = b.shape.length;
    const batchA = size(a.shape.slice(0, -2)), batchB = size(b.shape.slice(0, -2));
    const [m, k] = transposeA ? [a.shape[ra - 1], a.shape[ra - 2]] : [a.shape[ra - 2], a.shape[ra - 1]];
    const [kb, n] = transposeB ? [b.shape[rb - 1], b.shape[rb - 2]] : [b.shape[rb - 2], b.shape[rb - 1]];
    const sameOuter = batchA === batchB ? ra === rb && a.shape.slice(0, -2).every((d, i) => d === b.shape[i]) : batchA === 1 || batchB === 1;
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || k !== kb || !sameOuter) return original.kernelFunc(args as never) as TensorInfo;
    const outer = (batchA >= batchB ? a : b).shape.slice(0, -2);
    const wb = backend as unknown as WasmBackend;
    const out = wb.makeOutput([...outer, m, n], 'float32');
    if (m * n === 0) return out;
    lib.batchMatMul(wb.wasm.HEAPU8, Float64Array.from([batchA, batchB, m, k, n, transposeA ? 1 : 0, transposeB ? 1 : 0,
      offset(wb, a), offset(wb, b), offset(wb, out)]));
    return out;
  };
  return { ...original, kernelFunc: kernelFunc as unknown as KernelConfig['kernelFunc'] };
}

let active: NativeInfo | undefined;
/** The kernels the native ones replaced, to put back. */
const replaced = new Map<string, KernelConfig>();

/**
 * Registers the native kernels on the wasm backend when the addon loads
 * (idempotent; call before the backend's first use). Returns what runs, or
 * undefined when the wasm kernels stay.
 */
export function useNativeKernels(threads: number): NativeInfo | undefined {
  const lib = loadAddon();
  if (!lib) return undefined;
  lib.setThreads(threads);
  if (!active) {
    const kernels: Record<string, (original: KernelConfig | undefined) => KernelConfig> = {
      Conv2D: (original) => convKernel(lib, original!),
      FusedConv2D: (original) => convKernel(lib, original!),
      Conv2DBackpropFilter: () => gradientKernel('Conv2DBackpropFilter', (h, p) => lib.conv2dBackpropFilter(h, p)),
      Conv2DBackpropInput: () => gradientKernel('Conv2DBackpropInput', (h, p) => lib.conv2dBackpropInput(h, p)),
      BatchMatMul: (original) => batchMatMulKernel(lib, original!),
    };
    for (const [name, make] of Object.entries(kernels)) {
      const original = tf.getKernel(name, 'wasm');
      if (!original) throw new Error(`wasm backend has no ${name} kernel to put the native one in front of`);
      replaced.set(name, original);
      tf.unregisterKernel(name, 'wasm');
      tf.registerKernel(make(original));
    }
  }
  active = { isa: lib.info().isa, threads: lib.info().threads };
  return active;
}

/** The native kernels in use, if any. */
export function nativeKernels(): NativeInfo | undefined {
  return active;
}

/**
 * Puts the wasm kernels back (tests and benchmarks compare both in one
 * process). The backend info written so far still names native kernels:
 * call it only around measurements, not in a run that writes outputs.
 */
export function stopNativeKernels(): void {
  if (!active) return;
  for (const [name, original] of replaced) {
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel(original);
  }
  replaced.clear();
  active = undefined;
}
