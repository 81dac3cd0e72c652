// Convolution gradients for the wasm backend, built from its fast XNNPACK
// Conv2D. tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter at all, and its
// Conv2DBackpropInput is a plain scalar loop (most of a training step's time).
// Both gradients are themselves convolutions:
//
//   dW[kh, kw, ci, co] = Σ_{b, oh, ow} x[b, oh·s + kh − pt, ow·s + kw − pl, ci] · dy[b, oh, ow, co]
//     = conv( xᵀ [Cin, H, W, B]  (batch ↔ channels swapped, padded),
//             dyᵀ [OH, OW, B, Cout] as the filter, dilated by the stride s )
//       → [Cin, KH, KW, Cout], transposed to HWIO.
//
//   dx = conv( dy, W flipped in space with in/out swapped [KH, KW, Cout, Cin],
//              padded KH − 1 − pt on top (a "full" convolution) )
//     For stride s > 1, split by output phase (sub-pixel): each of the s²
//     phases of dx is a stride-1 convolution of dy with the taps that reach
//     it, so no work is spent on the zeros of a stride-dilated dy.
//
// Shapes (NHWC, filters HWIO):
//   x  [B, H, W, Cin]   dy [B, OH, OW, Cout]   W [KH, KW, Cin, Cout]
import * as tf from '@tensorflow/tfjs-core';
import { backend_util } from '@tensorflow/tfjs-core';
import type { KernelBackend, KernelConfig, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';

/** The parts of tfjs-backend-wasm's BackendWasm used to move data in and out of its heap. */
interface WasmHeap {
  readSync(dataId: object): Float32Array;
  makeOutput(shape: number[], dtype: 'float32', memoryOffset?: number, values?: Float32Array): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}

type Pads = { top: number; bottom: number; left: number; right: number };

interface Ctx {
  backend: KernelBackend;
  /** Intermediates to free once the output exists. */
  temps: TensorInfo[];
}

/** Runs another wasm kernel on TensorInfos, remembering the result as a temporary. */
function call(ctx: Ctx, kernel: string, inputs: NamedTensorInfoMap, attrs: NamedAttrMap = {}): TensorInfo {
  const k = tf.getKernel(kernel, 'wasm');
  if (!k) throw new Error(`wasm backend has no ${kernel} kernel, needed by casl's convolution gradients`);
  const out = k.kernelFunc({ inputs, backend: ctx.backend, attrs }) as TensorInfo;
  ctx.temps.push(out);
  return out;
}

function release(ctx: Ctx, keep: TensorInfo): void {
  for (const t of ctx.temps) if (t !== keep) ctx.backend.disposeData(t.dataId);
}

/**
 * Crops rows/columns where a pad is negative (the convolution never reads
 * them) and returns the non-negative pads left for Conv2D itself.
 */
function cropNegativePads(ctx: Ctx, x: TensorInfo, p: Pads): { x: TensorInfo; pad: [[0, 0], [number, number], [number, number], [0, 0]] } {
  const [b, h, w, c] = x.shape;
  const cropT = Math.max(0, -p.top), cropB = Math.max(0, -p.bottom);
  const cropL = Math.max(0, -p.left), cropR = Math.max(0, -p.right);
  if (cropT + cropB + cropL + cropR > 0) {
    x = call(ctx, 'Slice', { x }, { begin: [0, cropT, cropL, 0], size: [b, h - cropT - cropB, w - cropL - cropR, c] });
  }
  return { x, pad: [[0, 0], [Math.max(p.top, 0), Math.max(p.bottom, 0)], [Math.max(p.left, 0), Math.max(p.right, 0)], [0, 0]] };
}

function convInfo(xShape: number[], filterShape: number[], attrs: NamedAttrMap): backend_util.Conv2DInfo {
  const { strides, pad, dataFormat, dimRoundingMode } = attrs as unknown as {
    strides: [number, number] | number; pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
    dataFormat: 'NHWC' | 'NCHW'; dimRoundingMode?: 'floor' | 'round' | 'ceil';
  };
  if (dataFormat === 'NCHW') throw new Error('casl wasm convolution gradients support NHWC only (dataFormat NCHW was asked for)');
  return backend_util.computeConv2DInfo(
    xShape as [number, number, number, number], filterShape as [number, number, number, number],
    strides, 1, pad, dimRoundingMode, false, 'channelsLast');
}

function conv2dBackpropFilter({ inputs, backend, attrs }: { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs?: NamedAttrMap }): TensorInfo {
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const filterShape = (attrs as { filterShape: number[] }).filterShape;
  const info = convInfo(x.shape, filterShape, attrs!);
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow, inHeight: h, inWidth: w } = info;
  const ctx: Ctx = { backend, temps: [] };
  // Rows read: −top … −top + (KH − 1) + (OH − 1)·s; pad or crop x to exactly that.
  const pads: Pads = {
    top: info.padInfo.top,
    bottom: kh + (oh - 1) * sh - info.padInfo.top - h,
    left: info.padInfo.left,
    right: kw + (ow - 1) * sw - info.padInfo.left - w,
  };
  const cropped = cropNegativePads(ctx, x, pads);
  const xT = call(ctx, 'Transpose', { x: cropped.x }, { perm: [3, 1, 2, 0] });
  const dyT = call(ctx, 'Transpose', { x: dy }, { perm: [1, 2, 0, 3] });
  const y = call(ctx, 'Conv2D', { x: xT, filter: dyT }, {
    strides: [1, 1], pad: cropped.pad, dataFormat: 'NHWC', dilations: [sh, sw], dimRoundingMode: undefined,
  } as unknown as NamedAttrMap);
  const dW = call(ctx, 'Transpose', { x: y }, { perm: [1, 2, 0, 3] });
  release(ctx, dW);
  return dW;
}

/**
 * One phase's filter for the transposed convolution: the taps kh = rh + s·m
 * (m = 0 … mh − 1), in reverse order, input and output channels swapped:
 *   F[t, u, co, ci] = W[rh + sh·(mh − 1 − t), rw + sw·(mw − 1 − u), ci, co].
 * Rearranged on the JS side: the wasm Reverse kernel is a scalar loop that
 * alone took longer than the convolution it feeds.
 */
function phaseFilter(w: Float32Array, [kh, kw, cin, cout]: number[], rh: number, rw: number, sh: number, sw: number, mh: number, mw: number): Float32Array {
  const out = new Float32Array(mh * mw * cout * cin);
  for (let t = 0; t < mh; t++) {
    const y = rh + sh * (mh - 1 - t);
    for (let u = 0; u < mw; u++) {
      const x = rw + sw * (mw - 1 - u);
      const src = (y * kw + x) * cin * cout;
      const dst = (t * mw + u) * cout * cin;
      for (let ci = 0; ci < cin; ci++) {
        const s = src + ci * cout;
        for (let co = 0; co < cout; co++) out[dst + co * cin + ci] = w[s + co];
      }
    }
  }
  return out;
}

/**
 * dx as sh·sw stride-1 convolutions of dy, one per output phase (py, px):
 * rows y = sh·i + py only receive the taps kh ≡ py + top (mod sh), so each
 * phase is a small convolution with those taps (a sub-pixel split), and the
 * phases interleave into dx. For stride 1 it is the one full convolution.
 * Work equals the forward pass's; a stride-dilated dy would be s²× that.
 */
/**
 * Phases [py·sw + px] of shape [B, hc, wc, C] → [B, hc·sh, wc·sw, C] with
 * out[n, i·sh + py, j·sw + px] = phase[py·sw + px][n, i, j]. A JS copy: the
 * wasm Transpose of the equivalent rank-6 permutation is a scalar loop
 * (41 ms against 1 ms here for tiny-fcos's largest stride-2 layer).
 */
function interleave(ctx: Ctx, phases: TensorInfo[], [b, hc, wc, c]: number[], sh: number, sw: number): TensorInfo {
  const wasm = ctx.backend as unknown as WasmHeap;
  const out = wasm.makeOutput([b, hc * sh, wc * sw, c], 'float32');
  ctx.temps.push(out);
  // Views taken after the allocation: growing the heap detaches older ones.
  const dst = wasm.typedArrayFromHeap(out);
  const src = phases.map((p) => wasm.typedArrayFromHeap(p));
  const rowLen = wc * sw * c;
  for (let n = 0; n < b; n++) {
    for (let i = 0; i < hc; i++) {
      for (let py = 0; py < sh; py++) {
        const row = ((n * hc + i) * sh + py) * rowLen;
        for (let px = 0; px < sw; px++) {
          const from = src[py * sw + px];
          let so = (n * hc + i) * wc * c;
          for (let j = 0; j < wc; j++) {
            const d = row + (j * sw + px) * c;
            for (let k = 0; k < c; k++) dst[d + k] = from[so + k];
            so += c;
          }
        }
      }
    }
  }
  return out;
}

function conv2dBackpropInput({ inputs, backend, attrs }: { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs?: NamedAttrMap }): TensorInfo {
  const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
  const inputShape = (attrs as { inputShape: number[] }).inputShape;
  const info = convInfo(inputShape, filter.shape, attrs!);
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow, inHeight: h, inWidth: w, batchSize: b, inChannels: cin } = info;
  const ctx: Ctx = { backend, temps: [] };
  const wasm = backend as unknown as WasmHeap;
  const weights = wasm.readSync(filter.dataId);
  // Every phase is computed on the same ceil(H/sh) × ceil(W/sw) grid, so they stack; extra rows are cropped after.
  const hc = Math.ceil(h / sh), wc = Math.ceil(w / sw);
  const phases: TensorInfo[] = [];
  for (let py = 0; py < sh; py++) {
    for (let px = 0; px < sw; px++) {
      const rh = (py + info.padInfo.top) % sh, qh = Math.floor((py + info.padInfo.top) / sh);
      const rw = (px + info.padInfo.left) % sw, qw = Math.floor((px + info.padInfo.left) / sw);
      const mh = Math.ceil((kh - rh) / sh), mw = Math.ceil((kw - rw) / sw);
      if (mh <= 0 || mw <= 0) {
        phases.push(call(ctx, 'Fill', {}, { shape: [b, hc, wc, cin], value: 0, dtype: 'float32' }));
        continue;
      }
      const f = wasm.makeOutput([mh, mw, info.outChannels, cin], 'float32', undefined, phaseFilter(weights, filter.shape, rh, rw, sh, sw, mh, mw));
      ctx.temps.push(f);
      // Output row i reads dy rows i + qh − (mh − 1) … i + qh.
      const top = mh - 1 - qh, left = mw - 1 - qw;
      const pads: Pads = { top, bottom: hc - oh - top + mh - 1, left, right: wc - ow - left + mw - 1 };
      const cropped = cropNegativePads(ctx, dy, pads);
      phases.push(call(ctx, 'Conv2D', { x: cropped.x, filter: f }, {
        strides: [1, 1], pad: cropped.pad, dataFormat: 'NHWC', dilations: [1, 1], dimRoundingMode: undefined,
      } as unknown as NamedAttrMap));
    }
  }
  let dx = phases.length === 1 ? phases[0] : interleave(ctx, phases, [b, hc, wc, cin], sh, sw);
  if (hc * sh !== h || wc * sw !== w) dx = call(ctx, 'Slice', { x: dx }, { begin: [0, 0, 0, 0], size: [b, h, w, cin] });
  release(ctx, dx);
  return dx;
}

export const conv2DBackpropFilterConfig: KernelConfig = {
  kernelName: 'Conv2DBackpropFilter',
  backendName: 'wasm',
  kernelFunc: conv2dBackpropFilter as unknown as KernelConfig['kernelFunc'],
};

export const conv2DBackpropInputConfig: KernelConfig = {
  kernelName: 'Conv2DBackpropInput',
  backendName: 'wasm',
  kernelFunc: conv2dBackpropInput as unknown as KernelConfig['kernelFunc'],
};

/** The wasm backend's own Conv2DBackpropInput (a scalar loop), kept for benchmarks and tests. */
export let builtinConv2DBackpropInput: KernelConfig | undefined;

let registered = false;

/**
 * Registers casl's wasm kernels (idempotent). Must run before the wasm
 * backend is first used for training; importing src/model/backend does it.
 */
export function registerWasmKernels(): void {
  if (registered) return;
  registered = true;
  builtinConv2DBackpropInput = tf.getKernel('Conv2DBackpropInput', 'wasm');
  for (const cfg of [conv2DBackpropFilterConfig, conv2DBackpropInputConfig]) {
    if (tf.getKernel(cfg.kernelName, 'wasm')) tf.unregisterKernel(cfg.kernelName, 'wasm');
    tf.registerKernel(cfg);
  }
}
