// tfjs-core's gradient functions, registered once per process.
//
// The Node build of tfjs-core (`tf-core.node.js`) ships no gradients: the
// union package `@tensorflow/tfjs` normally imports
// `@tensorflow/tfjs-core/dist/register_all_gradients`. Those ESM sources
// import each other without file extensions, which Node's ESM resolver
// refuses, and sit in a package that is not `"type": "module"`, so Node (or a
// TypeScript loader such as the tests') would load them as CommonJS. A
// resolve hook adds `.js` and a load hook marks them as ES modules. The
// gradients land in tfjs's global registry (a process-wide global), shared
// with the CommonJS build every other module imports.
import { register } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';

const HOOKS = `
const inCore = (url) => url && url.includes('/@tensorflow/tfjs-core/dist/') && !url.includes('/tf-core.');
export async function resolve(spec, ctx, next) {
  if (inCore(ctx.parentURL) && spec.startsWith('.') && !spec.endsWith('.js')) {
    try { return await next(spec + '.js', ctx); } catch { return next(spec + '/index.js', ctx); }
  }
  return next(spec, ctx);
}
export async function load(url, ctx, next) {
  return inCore(url) ? next(url, { ...ctx, format: 'module' }) : next(url, ctx);
}`;

let pending: Promise<void> | undefined;

/** Idempotent: makes tf.grad / tf.variableGrads work. */
export function enableGradients(): Promise<void> {
  pending ??= (async () => {
    if (tf.getGradient('Conv2D')) return;
    register(`data:text/javascript,${encodeURIComponent(HOOKS)}`);
    await import('@tensorflow/tfjs-core/dist/register_all_gradients.js' as string);
    if (!tf.getGradient('Conv2D')) throw new Error('registering tfjs-core gradients failed: its register_all_gradients module loaded but Conv2D has no gradient (two tfjs-core versions installed?)');
  })();
  return pending;
}

export function gradientsEnabled(): boolean {
  return tf.getGradient('Conv2D') !== undefined;
}
