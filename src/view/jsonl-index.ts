// One streaming pass over a prediction / pseudo-label JSONL that keeps, per
// line, only where it is (byte offset and length) and its scores, so the
// viewer can count survivors at any δ and read any page back with positioned
// reads without ever holding the file. 100,000 records with 20 instances
// each cost about 20 MB here (scores as float64, so `score > δ` is decided on
// exactly the number the JSONL holds, as `casl filter` decides it).
import { createReadStream } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { PredictionRecord } from '../records.js';
import { isErrorRecord, predictionRecordProblem } from '../records.js';
import { type GroundTruth, matchToGroundTruth } from './ground-truth.js';
import { lexicalRefusal } from './safe-path.js';

export const Kind = {
  Prediction: 0,
  /** An error record carried in the JSONL (`{"error", "stage"}`). */
  ErrorRecord: 1,
  /** A line that is not JSON or not a prediction record. */
  Invalid: 2,
} as const;

/** A typed array that doubles when full: the index never knows its length in advance. */
class Growable<T extends Float64Array | Uint32Array | Uint8Array> {
  length = 0;
  constructor(private data: T, private readonly make: (n: number) => T) {}
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = this.make(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
  /** The filled part, trimmed so the spare capacity is freed. */
  done(): T {
    return this.data.slice(0, this.length) as T;
  }
}

const f64 = (n: number) => new Growable(new Float64Array(n), (m) => new Float64Array(m));
const u32 = (n: number) => new Growable(new Uint32Array(n), (m) => new Uint32Array(m));

export interface Counts {
  delta: number;
  /** Prediction records (images) in the file. */
  images: number;
  /** Images with at least one instance scoring > δ. */
  imagesKept: number;
  imagesDropped: number;
  instances: number;
  instancesKept: number;
  /** Lines that are error records or not prediction records. */
  errors: number;
}

export class JsonlIndex {
  private constructor(
    readonly file: string,
    readonly bytes: number,
    /** Byte offset of each record's line. */
    readonly offsets: Float64Array,
    /** Byte length of each record's line, without the '\n'. */
    readonly lengths: Uint32Array,
    /** 1-based line number of each record (blank lines are skipped). */
    readonly lines: Uint32Array,
    readonly kinds: Uint8Array,
    /** 1 where a prediction's file_name is missing or refused before any disk access (absolute, '..'). */
    readonly refused: Uint8Array,
    /** Record i's scores are scores[scoreStart[i] .. scoreStart[i+1]), sorted descending. */
    readonly scoreStart: Uint32Array,
    readonly scores: Float64Array,
    /** Per record, the score of the prediction each non-crowd GT box was matched to (−∞ when none), sorted descending; empty without --gt. */
    readonly gtStart: Uint32Array,
    readonly gtMatch: Float64Array,
  ) {
    // Every score, and each prediction's best score, sorted ascending: the
    // counts at any δ are then two binary searches, so the slider never waits
    // on a pass over 100,000 records.
    this.allScores = Float64Array.from(scores).sort();
    const best: number[] = [];
    for (let i = 0; i < kinds.length; i++) {
      if (kinds[i] === Kind.Prediction) best.push(scoreStart[i + 1] > scoreStart[i] ? scores[scoreStart[i]] : -Infinity);
    }
    this.bestScores = Float64Array.from(best).sort();
    this.errors = kinds.length - best.length;
  }

  private readonly allScores: Float64Array;
  private readonly bestScores: Float64Array;
  private readonly errors: number;

  get count(): number {
    return this.kinds.length;
  }

  /**
   * Indexes `file` in one pass. `gt`, when given, is matched record by record
   * (IoU ≥ 0.5, class-agnostic) so recall at any δ is a count, not a re-read.
   */
  static async build(
    file: string,
    gt?: GroundTruth,
    onProgress?: (records: number, bytes: number) => void,
    /** Awaited between slices of parsing: the viewer holds the index back while it serves requests. */
    pause?: () => Promise<void>,
  ): Promise<JsonlIndex> {
    const offsets = f64(1024);
    const lengths = u32(1024);
    const lines = u32(1024);
    const kinds = new Growable(new Uint8Array(1024), (m) => new Uint8Array(m));
    const refused = new Growable(new Uint8Array(1024), (m) => new Uint8Array(m));
    const scoreStart = u32(1024);
    const scores = f64(4096);
    const gtStart = u32(1024);
    const gtMatch = f64(gt ? 4096 : 1);
    const addLine = (buf: Buffer, start: number, lineNo: number) => {
      const text = buf.toString('utf8');
      if (text.trim() === '') return;
      offsets.push(start);
      lengths.push(buf.length);
      lines.push(lineNo);
      scoreStart.push(scores.length);
      gtStart.push(gtMatch.length);
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      if (parsed === undefined || isErrorRecord(parsed) || predictionRecordProblem(parsed) !== null) {
        kinds.push(parsed !== undefined && isErrorRecord(parsed) ? Kind.ErrorRecord : Kind.Invalid);
        refused.push(0);
        return;
      }
      kinds.push(Kind.Prediction);
      const rec = parsed as PredictionRecord;
      refused.push(typeof rec.file_name === 'string' && lexicalRefusal(rec.file_name) === null ? 0 : 1);
      const s = rec.instances.map((inst) => inst.score).sort((a, b) => b - a);
      for (const v of s) scores.push(v);
      if (gt) for (const v of matchToGroundTruth(rec, gt).sort((a, b) => b - a)) gtMatch.push(v);
    };
    const pos = await scanLines(file, (buf, start, lineNo) => {
      addLine(buf, start, lineNo);
      return true;
    }, (bytes) => onProgress?.(kinds.length, bytes), pause);
    scoreStart.push(scores.length);
    gtStart.push(gtMatch.length);
    return new JsonlIndex(file, pos, offsets.done(), lengths.done(), lines.done(), kinds.done(), refused.done(), scoreStart.done(),
      scores.done(), gtStart.done(), gt ? gtMatch.done() : new Float64Array(0));
  }

  /** How many of record i's instances score strictly above δ. */
  keptAt(i: number, delta: number): number {
    return countAbove(this.scores, this.scoreStart[i], this.scoreStart[i + 1], delta);
  }

  instanceCount(i: number): number {
    return this.scoreStart[i + 1] - this.scoreStart[i];
  }

  /** Non-crowd ground-truth boxes of record i (0 without --gt or without a GT image). */
  gtCount(i: number): number {
    return this.gtStart[i + 1] - this.gtStart[i];
  }

  /** Fraction of record i's GT boxes matched by a prediction scoring > δ; null when it has no GT box. */
  recallAt(i: number, delta: number): number | null {
    const n = this.gtCount(i);
    if (n === 0) return null;
    return countAbove(this.gtMatch, this.gtStart[i], this.gtStart[i + 1], delta) / n;
  }

  /** The δ filter's counts (score > δ; an image with no survivor is dropped), from the index alone. */
  counts(delta: number): Counts {
    const images = this.bestScores.length;
    const imagesKept = images - countAtMost(this.bestScores, delta);
    const instances = this.allScores.length;
    const instancesKept = instances - countAtMost(this.allScores, delta);
    return { delta, images, imagesKept, imagesDropped: images - imagesKept, instances, instancesKept, errors: this.errors };
  }

  /**
   * What the slider moves over: instance scores in `bins` equal bins of
   * [0, 1] (scores outside go to the end bins), and the images kept at
   * δ = 0, 1/bins, …, 1.
   */
  scoreProfile(bins: number): { instances: number[]; imagesKept: number[] } {
    const instances = new Array<number>(bins).fill(0);
    for (const v of this.allScores) instances[Math.min(bins - 1, Math.max(0, Math.floor(v * bins)))] += 1;
    const imagesKept = Array.from({ length: bins + 1 }, (_, k) => this.counts(k / bins).imagesKept);
    return { instances, imagesKept };
  }

  /** Reads record i's line back (one positioned read). */
  async readLine(fh: FileHandle, i: number): Promise<string> {
    const buf = Buffer.alloc(this.lengths[i]);
    await fh.read(buf, 0, buf.length, this.offsets[i]);
    return buf.toString('utf8');
  }
}

/** Number of values ≤ `delta` in `arr`, which is sorted ascending. */
function countAtMost(arr: Float64Array, delta: number): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (arr[mid] <= delta) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Number of values above `delta` in arr[lo..hi), which is sorted descending. */
function countAbove(arr: Float64Array, lo: number, hi: number, delta: number): number {
  const start = lo;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (arr[mid] > delta) lo = mid + 1;
    else hi = mid;
  }
  return lo - start;
}

/** Longest stretch of parsing between two turns of the event loop. */
const SLICE_MS = 4;

/**
 * Calls `onLine(bytes, offset, lineNo)` for each line of `file` (without its
 * '\n'; a last line without one counts) until it returns false. Lines are cut
 * on bytes, not characters, so offsets stay right whatever the UTF-8 in file
 * names. Returns the bytes read.
 */
export async function scanLines(
  file: string,
  onLine: (buf: Buffer, offset: number, lineNo: number) => boolean,
  onChunk?: (bytes: number) => void,
  pause?: () => Promise<void>,
): Promise<number> {
  let lineNo = 0;
  let pos = 0;
  // Bytes of a line split across chunks.
  let carry: Buffer[] = [];
  let carryStart = 0;
  // The viewer indexes while it serves: parsing gives the event loop back
  // every few milliseconds, so a page or a thumbnail request never waits
  // behind a megabyte of JSON.
  let slice = performance.now();
  const stream = createReadStream(file, { highWaterMark: 1 << 20 });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let from = 0;
      for (let nl = chunk.indexOf(10, from); nl >= 0; nl = chunk.indexOf(10, from)) {
        if (performance.now() - slice > SLICE_MS) {
          await (pause ? pause() : new Promise((resolve) => setImmediate(resolve)));
          slice = performance.now();
        }
        const piece = chunk.subarray(from, nl);
        lineNo += 1;
        let more: boolean;
        if (carry.length > 0) {
          carry.push(piece);
          more = onLine(Buffer.concat(carry), carryStart, lineNo);
          carry = [];
        } else {
          more = onLine(piece, pos + from, lineNo);
        }
        if (!more) return pos + nl + 1;
        from = nl + 1;
      }
      if (from < chunk.length) {
        if (carry.length === 0) carryStart = pos + from;
        carry.push(chunk.subarray(from));
      }
      pos += chunk.length;
      onChunk?.(pos);
    }
  } finally {
    stream.destroy();
  }
  if (carry.length > 0) onLine(Buffer.concat(carry), carryStart, lineNo + 1);
  return pos;
}

/** Where a record's line is: enough to read it back with one positioned read. */
export interface LineRef {
  offset: number;
  length: number;
  /** 1-based line number in the file. */
  line: number;
}

/**
 * The first `n` non-blank lines of `file` (fewer at its end), read from the
 * start: what the first pages need while the index of a large file is built.
 */
export async function readHead(file: string, n: number): Promise<{ refs: LineRef[]; complete: boolean }> {
  const refs: LineRef[] = [];
  let complete = true;
  await scanLines(file, (buf, offset, line) => {
    if (refs.length === n) {
      complete = false;
      return false;
    }
    if (buf.toString('utf8').trim() !== '') refs.push({ offset, length: buf.length, line });
    return true;
  });
  return { refs, complete };
}

/**
 * Lets background work (the index) run only when no request has been in
 * flight for a moment: on two shared cores, the first page's thumbnails get
 * the CPU first and the counts come right after.
 */
export class IdleGate {
  private active = 0;
  private last = 0;

  constructor(private readonly quietMs = 150) {}

  begin(): void {
    this.active += 1;
  }

  end(): void {
    this.active -= 1;
    this.last = performance.now();
  }

  readonly wait = async (): Promise<void> => {
    await new Promise((resolve) => setImmediate(resolve));
    while (this.active > 0 || performance.now() - this.last < this.quietMs) await new Promise((resolve) => setTimeout(resolve, 20));
  };
}
