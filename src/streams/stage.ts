// The shape every casl stream stage shares. A stage is a function from a
// highland stream to a highland stream, composed with `.through(stage)`.
// Records that failed upstream travel as `ErrorRecord`s beside the good ones
// (DESIGN.md: a bad input becomes an error record and a count, never a crash
// of the whole stream and never a silent skip), so most stages take and give
// `OrError<T>`.
import type Highland from 'highland';
import { type ErrorRecord, isErrorRecord } from '../records.js';

export type Stream<T> = Highland.Stream<T>;
export type Stage<A, B> = (s: Highland.Stream<A>) => Highland.Stream<B>;
export type OrError<T> = T | ErrorRecord;

export { isErrorRecord };

/**
 * The error record for input `x` that failed in `stage` with `e`: it keeps
 * the input's `file_name`, `image_id` and `line` so the error can be traced
 * back to the file that caused it.
 */
export function errorFrom(x: unknown, stage: string, e: unknown): ErrorRecord {
  const rec: ErrorRecord = { error: e instanceof Error ? e.message : String(e), stage };
  if (typeof x === 'object' && x !== null) {
    const src = x as Record<string, unknown>;
    if (typeof src.file_name === 'string') rec.file_name = src.file_name;
    if (typeof src.image_id === 'number') rec.image_id = src.image_id;
    if (typeof src.line === 'number') rec.line = src.line;
  }
  return rec;
}
