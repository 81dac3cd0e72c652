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
//   dx = conv( dy dilated by s (s − 1 zeros between rows and columns),
//              W flipped in space with in/out swapped [KH, KW, Cout, Cin],
//              padded KH − 1 − pt on top (a "full" convolution) )
//     For stride 2 the dilated dy is 3/4 zeros; a sub-pixel split would save
//     that work, but these convs are a small part of tiny-fcos's backward pass.
//
// Shapes (NHWC, filters HWIO):
//   x  [B, H, W, Cin]   dy [B, OH, OW, Cout]   W [KH, KW, Cin, Cout]
import * as tf from '@tensorflow/tfjs-core';
import { backend_util } from '@tensorflow/tfjs-core';
import type { KernelBackend, KernelConfig, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';

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

/** dy [B, OH, OW, C] with s − 1 zero rows/columns after each one: [B, OH·sh, OW·sw, C]. */
function dilate(ctx: Ctx, dy: TensorInfo, sh: number, sw: number): TensorInfo {
  if (sh === 1 && sw === 1) return dy;
  const [b, oh, ow, c] = dy.shape;
  const r = call(ctx, 'Reshape', { x: dy }, { shape: [b, oh, 1, ow, 1, c] });
  const p = call(ctx, 'PadV2', { x: r }, { paddings: [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]], constantValue: 0 });
  return call(ctx, 'Reshape', { x: p }, { shape: [b, oh * sh, ow * sw, c] });
}

function conv2dBackpropInput({ inputs, backend, attrs }: { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs?: NamedAttrMap }): TensorInfo {
  const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
  const inputShape = (attrs as { inputShape: number[] }).inputShape;
  const info = convInfo(inputShape, filter.shape, attrs!);
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow, inHeight: h, inWidth: w } = info;
  const ctx: Ctx = { backend, temps: [] };
  const dyd = dilate(ctx, dy, sh, sw);
  // A full convolution: output row i reads dilated rows i − (KH − 1 − top) … ; size must come out H.
  const top = kh - 1 - info.padInfo.top;
  const left = kw - 1 - info.padInfo.left;
  const pads: Pads = { top, bottom: h + kh - 1 - top - oh * sh, left, right: w + kw - 1 - left - ow * sw };
  const cropped = cropNegativePads(ctx, dyd, pads);
  const flipped = call(ctx, 'Reverse', { x: filter }, { dims: [0, 1] });
  const wT = call(ctx, 'Transpose', { x: flipped }, { perm: [0, 1, 3, 2] });
  const dx = call(ctx, 'Conv2D', { x: cropped.x, filter: wT }, {
    strides: [1, 1], pad: cropped.pad, dataFormat: 'NHWC', dilations: [1, 1], dimRoundingMode: undefined,
  } as unknown as NamedAttrMap);
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
