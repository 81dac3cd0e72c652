// The end of a pipeline: text or bytes into a file or stdout, one write at a
// time, waiting for 'drain' whenever the destination's buffer is full, so a
// slow disk or a slow reader downstream of a Unix pipe slows the whole
// pipeline instead of filling memory.
import { createWriteStream } from 'node:fs';
import _ from 'highland';
import type { Stream } from './stage.js';

export interface WriteResult {
  /** Chunks written. */
  written: number;
  /**
   * The reader went away before the end (EPIPE: `casl ingest | head -3`).
   * This is a normal end for a command: stop and exit 0.
   */
  closedEarly: boolean;
}

function isClosedPipe(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED' || code === 'ECONNRESET';
}

/**
 * Stream of strings/Buffers → a promise resolved once everything is flushed.
 *
 * `dest` is a path (the file is created or truncated, and closed at the end)
 * or a writable such as `process.stdout` (left open). The promise rejects on
 * a highland error in the stream or a write error other than a closed pipe;
 * on a closed pipe it stops pulling, resolves with `closedEarly: true`, and
 * the upstream stages stay paused (the caller may destroy its sources).
 *
 * Example:
 *
 *     const { closedEarly } = await records.through(serializeJsonl()).through(writeTo(ctx.stdout));
 */
export function writeTo<T extends string | Buffer>(dest: string | NodeJS.WritableStream): (s: Stream<T>) => Promise<WriteResult> {
  return (s) =>
    new Promise<WriteResult>((resolve, reject) => {
      const out: NodeJS.WritableStream = typeof dest === 'string' ? createWriteStream(dest) : dest;
      const owned = typeof dest === 'string';
      let written = 0;
      let unflushed = 0;
      let ending = false;
      let settled = false;
      const settle = (e: unknown, closedEarly = false) => {
        if (settled) return;
        settled = true;
        s.destroy();
        if (e) reject(e);
        else resolve({ written, closedEarly });
      };
      // A write's callback runs once that chunk is handed to the OS; when
      // the last one has run, everything is flushed.
      const flushed = () => {
        unflushed--;
        if (ending && unflushed === 0) settle(null);
      };
      // Kept for the life of the process: an EPIPE reported after we settle
      // must not become an uncaught 'error' event.
      out.on('error', (e) => settle(isClosedPipe(e) ? null : e, true));
      s.consume<never>((err, x, _push, next) => {
        if (settled) return;
        if (err) {
          settle(err);
          return;
        }
        if (_.isNil(x)) {
          if (owned) {
            out.once('close', () => settle(null));
            out.end();
          } else {
            ending = true;
            if (unflushed === 0) settle(null);
          }
          return;
        }
        written++;
        unflushed++;
        if (out.write(x, flushed)) next();
        else out.once('drain', next);
      }).resume();
    });
}
