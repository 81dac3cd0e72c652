// JSONL in and out: one JSON object a line, UTF-8, each line ended by `\n`.
import { createReadStream, statSync } from 'node:fs';
import _ from 'highland';
import { UsageError } from '../cli/command.js';
import type { ErrorRecord } from '../records.js';
import type { OrError, Stage, Stream } from './stage.js';

/** Longest line parseJsonl accepts by default: a prediction with 100 RLE masks is well under this. */
export const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;

export interface ParseJsonlOptions {
  /** Lines longer than this many bytes (counting a `\r`, not the `\n`) become error records; default 16 MiB. */
  maxLineLength?: number;
  /** The input's name for error records (`file_name`), e.g. the file path or `<stdin>`. */
  source?: string;
}

const LF = 0x0a;
const CR = 0x0d;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v}`;
}

/**
 * Bytes or text → one object per line.
 *
 *     Buffer('{"a":1}\r\n\n[2]\n{"b":')  →  {a: 1}, ErrorRecord(line 3), ErrorRecord(line 4)
 *
 * A UTF-8 byte order mark at the start and a `\r` before each `\n` are
 * dropped; blank lines are skipped. Invalid JSON, a line that is not an
 * object, and a line over `maxLineLength` bytes each become an error record
 * `{error, line, stage: 'parse', file_name: source}` and the stream goes on.
 * An over-long line is skipped without being buffered, so memory stays
 * bounded by `maxLineLength` whatever the input.
 *
 * A last line without its `\n` is an error record and is not parsed: casl
 * ends every line it writes, so a missing `\n` means the writer was cut off
 * (a torn write), and its text may be a valid but incomplete prefix such as
 * `{"image_id": 12}` of a longer record.
 *
 * Example:
 *
 *     _(fs.createReadStream('preds.jsonl')).through(parseJsonl({ source: 'preds.jsonl' }))
 */
export function parseJsonl<T extends object = Record<string, unknown>>(
  opts: ParseJsonlOptions = {},
): Stage<Buffer | string, OrError<T>> {
  const max = opts.maxLineLength ?? DEFAULT_MAX_LINE_BYTES;
  if (!(max > 0)) throw new RangeError(`parseJsonl: maxLineLength must be positive, got ${max}`);
  const source = opts.source;
  return (s) => {
    let pending: Buffer[] = [];
    let pendingLen = 0;
    let lineNo = 1;
    let skipping = false; // inside an over-long line, already reported

    const error = (message: string, line: number): ErrorRecord => {
      const e: ErrorRecord = { error: message, stage: 'parse', line };
      if (source !== undefined) e.file_name = source;
      return e;
    };
    const tooLong = (line: number) =>
      error(`line ${line} is longer than the maximum of ${max} bytes; raise maxLineLength if such records are expected`, line);

    const parseLine = (buf: Buffer, line: number): OrError<T> | undefined => {
      let start = 0;
      let end = buf.length;
      if (line === 1 && end >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) start = 3;
      if (end > start && buf[end - 1] === CR) end--;
      const text = buf.toString('utf8', start, end);
      if (text.trim() === '') return undefined;
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch (e) {
        return error(`line ${line} is not valid JSON: ${(e as Error).message}`, line);
      }
      if (typeof v !== 'object' || v === null || Array.isArray(v)) {
        return error(`line ${line} is ${describe(v)}, not a JSON object`, line);
      }
      return v as T;
    };

    return s.consume<OrError<T>>((err, x, push, next) => {
      if (err) {
        push(err);
        next();
        return;
      }
      if (_.isNil(x)) {
        if (!skipping && pendingLen > 0) {
          const rest = Buffer.concat(pending, pendingLen);
          if (rest.toString('utf8').trim() !== '') {
            push(null, error(`line ${lineNo} has no final newline: the file was cut off mid-write (torn write), so the line is not parsed`, lineNo));
          }
        }
        push(null, _.nil);
        return;
      }
      const chunk = typeof x === 'string' ? Buffer.from(x, 'utf8') : x;
      let start = 0;
      while (start < chunk.length) {
        const nl = chunk.indexOf(LF, start);
        if (nl < 0) {
          const rest = chunk.subarray(start);
          if (!skipping) {
            pendingLen += rest.length;
            if (pendingLen > max) {
              push(null, tooLong(lineNo));
              skipping = true;
              pending = [];
              pendingLen = 0;
            } else {
              pending.push(rest);
            }
          }
          break;
        }
        const piece = chunk.subarray(start, nl);
        if (skipping) {
          skipping = false;
        } else if (pendingLen + piece.length > max) {
          push(null, tooLong(lineNo));
        } else {
          const buf = pendingLen === 0 ? piece : Buffer.concat([...pending, piece], pendingLen + piece.length);
          const rec = parseLine(buf, lineNo);
          if (rec !== undefined) push(null, rec);
        }
        pending = [];
        pendingLen = 0;
        lineNo++;
        start = nl + 1;
      }
      next();
    });
  };
}

/**
 * Records → JSONL text, one `\n`-terminated line each.
 *
 *     {a: 1}, {b: 2}  →  '{"a":1}\n', '{"b":2}\n'
 *
 * Example: `records.through(serializeJsonl()).through(writeTo(process.stdout))`
 */
export function serializeJsonl<T>(): Stage<T, string> {
  return (s) => s.map((x) => JSON.stringify(x) + '\n');
}

/**
 * The records of a JSONL file, or of a readable stream such as stdin
 * (`'-'` means stdin): a byte stream read with backpressure, then parseJsonl.
 * A path that is missing or not a file, or stdin that is a terminal, is a
 * UsageError at once, before any stage starts.
 *
 * Example: `readJsonl('-', { stdin: process.stdin })`
 */
export function readJsonl<T extends object = Record<string, unknown>>(
  input: string | NodeJS.ReadableStream,
  opts: ParseJsonlOptions & { stdin?: NodeJS.ReadableStream } = {},
): Stream<OrError<T>> {
  let bytes: Stream<Buffer | string>;
  let source = opts.source;
  if (typeof input !== 'string') {
    bytes = _<Buffer | string>(input);
    source ??= '<stream>';
  } else if (input === '-') {
    const stdin = opts.stdin ?? process.stdin;
    // Waiting on a terminal looks like a hang; the user meant to pipe records in.
    if ((stdin as NodeJS.ReadStream).isTTY) {
      throw new UsageError('records are read from stdin, which is a terminal: pipe them in (casl ingest … | casl …) or give a JSONL file');
    }
    bytes = _<Buffer | string>(stdin);
    source ??= '<stdin>';
  } else {
    let isFile = false;
    try {
      isFile = statSync(input).isFile();
    } catch (e) {
      throw new UsageError(`cannot read ${input}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; give a JSONL file or - for stdin`);
    }
    if (!isFile) throw new UsageError(`${input} is not a file; give a JSONL file or - for stdin`);
    bytes = _<Buffer | string>(createReadStream(input));
    source ??= input;
  }
  return bytes.through(parseJsonl<T>({ maxLineLength: opts.maxLineLength, source }));
}
