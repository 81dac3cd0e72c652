import _ from 'highland';
import { isErrorRecord } from '../records.js';
import type { OrError, Stage } from './stage.js';

/**
 * Records → arrays of `n` records; the last array holds what is left (the
 * tail is flushed, never dropped).
 *
 *     1 2 E 3 4 5  →  batch(2)  →  E [1,2] [3,4] [5]
 *
 * Error records are not put into batches: each goes on at once, ahead of
 * the batch being filled, so a stage that works on batches (inference)
 * never sees one and no error waits for a batch to fill.
 *
 * Example: `images.through(batch(8)).through(orderedMap(1, inferBatch))`
 */
export function batch<T>(n: number): Stage<OrError<T>, OrError<T[]>> {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`batch: size must be a positive integer, got ${n}`);
  return (s) => {
    let buf: T[] = [];
    return s.consume<OrError<T[]>>((err, x, push, next) => {
      if (err) {
        push(err);
        next();
      } else if (_.isNil(x)) {
        if (buf.length > 0) push(null, buf);
        push(null, _.nil);
      } else if (isErrorRecord(x)) {
        push(null, x);
        next();
      } else {
        buf.push(x);
        if (buf.length === n) {
          const full = buf;
          buf = [];
          push(null, full);
        }
        next();
      }
    });
  };
}

/**
 * Arrays → their elements, in order; error records pass through.
 *
 *     E [1,2] [3]  →  E 1 2 3
 *
 * Example: `batches.through(unbatch())`
 */
export function unbatch<T>(): Stage<OrError<T[]>, OrError<T>> {
  return (s) =>
    s.consume<OrError<T>>((err, x, push, next) => {
      if (err) push(err);
      else if (_.isNil(x)) {
        push(null, _.nil);
        return;
      } else if (isErrorRecord(x)) push(null, x);
      else for (const y of x) push(null, y);
      next();
    });
}
