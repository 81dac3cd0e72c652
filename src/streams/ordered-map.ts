import _ from 'highland';
import { isErrorRecord } from '../records.js';
import { errorFrom, type OrError, type Stage } from './stage.js';

export interface OrderedMapOptions {
  /** Stage name for the error records made from a rejected `fn`; default 'map'. */
  stage?: string;
}

/**
 * Records → `await fn(record)`, in input order, with at most `concurrency`
 * records taken from upstream and not yet sent downstream (running, or
 * done and waiting for an earlier one). A record that rejects becomes an
 * error record naming the stage and the input's file; error records from
 * upstream keep their place and are not passed to `fn`.
 *
 *     a b E c  →  orderedMap(2, f)  →  f(a) f(b) E f(c)   (f(b) may finish first)
 *
 * Example: `images.through(orderedMap(4, decodeOne, { stage: 'decode' }))`
 */
export function orderedMap<A, B>(
  concurrency: number,
  fn: (a: A) => Promise<B>,
  opts: OrderedMapOptions = {},
): Stage<OrError<A>, OrError<B>> {
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`orderedMap: concurrency must be a positive integer, got ${concurrency}`);
  }
  const stage = opts.stage ?? 'map';
  return (s) => {
    type Slot = { done: boolean; err?: Error; value?: OrError<B> };
    const window: Slot[] = [];
    let ended = false;
    let finished = false;
    let waiting: (() => void) | null = null;
    let push: (err: Error | null, value?: OrError<B> | Highland.Nil) => void = () => {};

    // Sends every finished slot at the head of the window, then asks
    // upstream for more if the window has room.
    const flush = () => {
      while (window.length > 0 && window[0].done) {
        const slot = window.shift()!;
        if (slot.err) push(slot.err);
        else push(null, slot.value);
      }
      if (ended) {
        if (window.length === 0 && !finished) {
          finished = true;
          push(null, _.nil);
        }
      } else if (waiting && window.length < concurrency) {
        const next = waiting;
        waiting = null;
        next();
      }
    };

    return s.consume<OrError<B>>((err, x, p, next) => {
      push = p;
      if (_.isNil(x)) {
        ended = true;
        flush();
        return;
      }
      let slot: Slot;
      if (err) slot = { done: true, err };
      else if (isErrorRecord(x)) slot = { done: true, value: x };
      else {
        const input = x;
        const pending: Slot = { done: false };
        slot = pending;
        let started: Promise<B>;
        try {
          started = Promise.resolve(fn(input));
        } catch (e) {
          started = Promise.reject(e);
        }
        started.then(
          (v) => { pending.value = v; },
          (e) => { pending.value = errorFrom(input, stage, e); },
        ).then(() => {
          pending.done = true;
          flush();
        });
      }
      window.push(slot);
      waiting = next;
      flush();
    });
  };
}
