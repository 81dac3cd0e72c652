// Optimisers over named parameters, written out so their state can be saved
// and restored exactly (bit-exact resume). Both follow PyTorch's update rules:
//   SGD   d = g + wd·p;  buf = μ·buf + d (buf = d on the first step);  p −= lr·buf
//   AdamW p −= lr·wd·p;  m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²;
//         p −= lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + eps)
// A parameter without a gradient this step is left alone, state and all
// (PyTorch skips parameters whose .grad is None).
import * as tf from '@tensorflow/tfjs-core';
import type { Params } from './params.js';

export interface SgdConfig {
  kind: 'sgd';
  momentum: number;
  weightDecay: number;
}

export interface AdamWConfig {
  kind: 'adamw';
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export type OptimizerConfig = SgdConfig | AdamWConfig;

/** The reference optimiser of tiny-fcos.md (its lr 0.01 is the schedule's). */
export const SGD_DEFAULTS: SgdConfig = { kind: 'sgd', momentum: 0.9, weightDecay: 1e-4 };
export const ADAMW_DEFAULTS: AdamWConfig = { kind: 'adamw', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-2 };

/** Everything needed to resume: slots are named `<param>/<slot>` (momentum, m, v). */
export interface OptimizerState {
  config: OptimizerConfig;
  /** Updates applied so far (AdamW's t). */
  step: number;
  /** Per-parameter update count, for AdamW's bias correction of parameters that skipped steps. */
  paramSteps: Record<string, number>;
  slots: Map<string, tf.Tensor>;
}

export class Optimizer {
  readonly config: OptimizerConfig;
  step = 0;
  private paramSteps = new Map<string, number>();
  private slots = new Map<string, tf.Variable>();

  constructor(config: OptimizerConfig) {
    this.config = { ...config };
  }

  /**
   * One update of every parameter in `grads` (keyed by parameter name) at
   * learning rate `lr`, times `lrScale(name)` when given (PyTorch's
   * parameter groups: the weight decay is scaled with it).
   */
  apply(params: Params, grads: Map<string, tf.Tensor>, lr: number, lrScale?: (name: string) => number): void {
    this.step++;
    for (const [name, g] of grads) {
      const p = params.get(name);
      if (!p) throw new Error(`optimizer: gradient for '${name}', which is not a parameter of this model`);
      const t = (this.paramSteps.get(name) ?? 0) + 1;
      this.paramSteps.set(name, t);
      const r = lrScale ? lr * lrScale(name) : lr;
      if (this.config.kind === 'sgd') this.sgd(name, p, g, r, t, this.config);
      else this.adamw(name, p, g, r, t, this.config);
    }
  }

  // A variable shares its initial tensor's data (reference counted), so the
  // tidy that disposes `init` leaves the slot intact.
  private slot(name: string, like: tf.Tensor, init?: tf.Tensor): tf.Variable {
    let s = this.slots.get(name);
    if (!s) {
      s = tf.variable(init ?? tf.zerosLike(like), false);
      this.slots.set(name, s);
    }
    return s;
  }

  private sgd(name: string, p: tf.Variable, g: tf.Tensor, lr: number, t: number, c: SgdConfig): void {
    tf.tidy(() => {
      const d = c.weightDecay ? tf.add(g, tf.mul(p, c.weightDecay)) : g;
      let update: tf.Tensor = d;
      if (c.momentum) {
        const key = `${name}/momentum`;
        if (t === 1 && !this.slots.has(key)) {
          update = this.slot(key, p, d);
        } else {
          const buf = this.slot(key, p);
          buf.assign(tf.add(tf.mul(buf, c.momentum), d));
          update = buf;
        }
      }
      p.assign(tf.sub(p, tf.mul(update, lr)));
    });
  }

  private adamw(name: string, p: tf.Variable, g: tf.Tensor, lr: number, t: number, c: AdamWConfig): void {
    tf.tidy(() => {
      const m = this.slot(`${name}/m`, p);
      const v = this.slot(`${name}/v`, p);
      m.assign(tf.add(tf.mul(m, c.beta1), tf.mul(g, 1 - c.beta1)));
      v.assign(tf.add(tf.mul(v, c.beta2), tf.mul(tf.square(g), 1 - c.beta2)));
      const bc1 = 1 - c.beta1 ** t;
      const bc2 = 1 - c.beta2 ** t;
      const decayed = c.weightDecay ? tf.mul(p, 1 - lr * c.weightDecay) : p;
      const denom = tf.add(tf.div(tf.sqrt(v), Math.sqrt(bc2)), c.eps);
      p.assign(tf.sub(decayed, tf.mul(tf.div(m, denom), lr / bc1)));
    });
  }

  /** A snapshot: tensors are copies, the caller's to dispose. */
  getState(): OptimizerState {
    const slots = new Map<string, tf.Tensor>();
    for (const [k, v] of this.slots) slots.set(k, v.clone());
    return { config: { ...this.config }, step: this.step, paramSteps: Object.fromEntries(this.paramSteps), slots };
  }

  /** Restores a snapshot taken by getState (or loaded from a checkpoint); the caller may dispose it afterwards. */
  setState(state: OptimizerState): void {
    if (state.config.kind !== this.config.kind) {
      throw new Error(`optimizer state is for '${state.config.kind}' but this optimizer is '${this.config.kind}'`);
    }
    this.disposeSlots();
    this.step = state.step;
    this.paramSteps = new Map(Object.entries(state.paramSteps));
    for (const [k, v] of state.slots) this.slots.set(k, tf.variable(v, false));
  }

  dispose(): void {
    this.disposeSlots();
  }

  private disposeSlots(): void {
    for (const v of this.slots.values()) v.dispose();
    this.slots.clear();
  }
}
