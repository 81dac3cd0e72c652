import { errorSink, routeErrors, type RunSummary } from './errors.js';
import { serializeJsonl } from './jsonl.js';
import { progress } from './progress.js';
import { writeTo } from './sink.js';
import type { OrError, Stream } from './stage.js';

export interface RunOutputOptions {
  /** The command's name, for progress, error lines and the summary. */
  command: string;
  /** Where the good records go as JSONL: a path, or a writable such as stdout. */
  out: string | NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** `--errors FILE`: error records as JSONL there instead of lines on stderr. */
  errors?: string;
  quiet?: boolean;
  /** Expected number of records, for the progress bar. */
  total?: number;
}

export interface RunOutcome {
  summary: RunSummary;
  /** The reader of `out` went away first (`| head`): a normal end. */
  closedEarly: boolean;
}

/**
 * The usual end of a command's pipeline, in one call: progress on stderr,
 * error records out to `--errors` or stderr, good records as JSONL to
 * `out` with backpressure, then the closing summary line.
 *
 *     records (with error records)  →  JSONL on out, errors aside, "name: N records, E errors in T s"
 *
 * Example:
 *
 *     const { summary } = await finishRun(records, { command: 'ingest', out: ctx.stdout, stderr: ctx.stderr, quiet, errors });
 */
export async function finishRun<T>(records: Stream<OrError<T>>, opts: RunOutputOptions): Promise<RunOutcome> {
  const p = progress(opts.command, { total: opts.total, quiet: opts.quiet, stderr: opts.stderr });
  const sink = errorSink({ file: opts.errors, stderr: opts.stderr, command: opts.command });
  try {
    const { closedEarly } = await records
      .through(p.tap)
      .through(routeErrors(sink, p.summary))
      .through(serializeJsonl())
      .through(writeTo(opts.out));
    return { summary: p.summary, closedEarly };
  } finally {
    await sink.close();
    p.done();
  }
}
