// The error side channel. A bad input becomes an ErrorRecord that travels
// with the good records through every stage untouched (mapOk, batch,
// orderedMap pass it on), and routeErrors takes it out at the end of the
// pipeline: written to `--errors FILE` or stderr, and counted into the run's
// summary. Nothing is crashed on and nothing is skipped silently.
import { createWriteStream } from 'node:fs';
import _ from 'highland';
import { type ErrorRecord, isErrorRecord } from '../records.js';
import { errorFrom, type OrError, type Stage } from './stage.js';

/**
 * Good records → `fn(record)`; error records pass through untouched. A
 * throwing `fn` turns its record into an error record with this stage name
 * (and the record's `file_name` / `image_id`), and the stream goes on.
 *
 *     a E b  →  mapOk('scale', f)  →  f(a) E ErrorRecord{stage: 'scale'}   (f threw on b)
 *
 * Example: `records.through(mapOk('filter', (r) => filterByScore(r, delta)))`
 */
export function mapOk<A, B>(stage: string, fn: (a: A) => B): Stage<OrError<A>, OrError<B>> {
  return (s) =>
    s.map((x): OrError<B> => {
      if (isErrorRecord(x)) return x;
      try {
        return fn(x);
      } catch (e) {
        return errorFrom(x, stage, e);
      }
    });
}

/** Counts of one run, printed as its closing line by `progress(...).done()`. */
export class RunSummary {
  readonly started = performance.now();
  ok = 0;
  errors = 0;
  readonly errorsByStage = new Map<string, number>();
  // The same error record may be seen by a progress tap and by routeErrors.
  private readonly seen = new WeakSet<object>();

  constructor(readonly name: string) {}

  countOk(n = 1): void {
    this.ok += n;
  }

  countError(e: ErrorRecord): void {
    if (this.seen.has(e)) return;
    this.seen.add(e);
    this.errors++;
    this.errorsByStage.set(e.stage, (this.errorsByStage.get(e.stage) ?? 0) + 1);
  }

  elapsedSeconds(): number {
    return (performance.now() - this.started) / 1000;
  }

  /** e.g. `ingest: 20000 records, 2 errors (decode 2) in 1.31 s (15267 records/s)` */
  toString(): string {
    const t = this.elapsedSeconds();
    const stages = [...this.errorsByStage].map(([k, v]) => `${k} ${v}`).join(', ');
    const rate = t > 0 ? ` (${Math.round(this.ok / t)} records/s)` : '';
    return `${this.name}: ${this.ok} records, ${this.errors} error${this.errors === 1 ? '' : 's'}`
      + `${stages ? ` (${stages})` : ''} in ${t.toFixed(2)} s${rate}`;
  }
}

/** Where error records go: a JSONL file, or readable lines on stderr. */
export interface ErrorSink {
  /** Writes one error; false means wait for `onDrain` before the next. */
  write(e: ErrorRecord): boolean;
  onDrain(cb: () => void): void;
  /** Flushes and closes a file; leaves stderr open. */
  close(): Promise<void>;
}

/**
 * `--errors FILE` → the error records as JSONL in FILE; no file → one line
 * per error on `stderr`: `casl <command>: error in <stage>: <file>:<line>: <message>`.
 */
export function errorSink(opts: { file?: string; stderr: NodeJS.WritableStream; command: string }): ErrorSink {
  const out: NodeJS.WritableStream = opts.file ? createWriteStream(opts.file) : opts.stderr;
  const line = opts.file
    ? (e: ErrorRecord) => JSON.stringify(e) + '\n'
    : (e: ErrorRecord) => {
      const where = [e.file_name, e.line].filter((v) => v !== undefined).join(':');
      return `casl ${opts.command}: error in ${e.stage}: ${where ? `${where}: ` : ''}${e.error}\n`;
    };
  let failure: Error | undefined;
  if (opts.file) out.on('error', (e: Error) => { failure = e; });
  return {
    write: (e) => {
      if (failure) throw new Error(`cannot write errors to ${opts.file}: ${failure.message}`);
      return out.write(line(e));
    },
    onDrain: (cb) => out.once('drain', cb),
    close: () =>
      new Promise<void>((resolve, reject) => {
        if (!opts.file) return resolve();
        if (failure) return reject(new Error(`cannot write errors to ${opts.file}: ${failure.message}`));
        out.once('error', (e: Error) => reject(new Error(`cannot write errors to ${opts.file}: ${e.message}`)));
        out.once('close', () => resolve());
        out.end();
      }),
  };
}

/**
 * Records and error records → the good records only. Each error record is
 * written to `sink` (waiting for it to drain when full) and counted into
 * `summary`. Put it last, just before serializing the good records.
 *
 *     a E b  →  a b        (E written to the sink, summary.errors + 1)
 *
 * Example: `records.through(routeErrors(errorSink({ file, stderr, command: 'infer' }), run.summary))`
 */
export function routeErrors<T>(sink: ErrorSink, summary?: RunSummary): Stage<OrError<T>, T> {
  return (s) =>
    s.consume<T>((err, x, push, next) => {
      if (err) {
        push(err);
        next();
      } else if (_.isNil(x)) {
        push(null, _.nil);
      } else if (isErrorRecord(x)) {
        summary?.countError(x);
        let ok: boolean;
        try {
          ok = sink.write(x);
        } catch (e) {
          push(e as Error);
          next();
          return;
        }
        if (ok) next();
        else sink.onDrain(next);
      } else {
        push(null, x);
        next();
      }
    });
}
