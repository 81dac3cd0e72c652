// A pycocotools results file (one JSON array of detections) read straight
// from its bytes. JSON.parse of a 500 × 100 mask results file builds ~250,000
// objects and 50,000 `counts` strings that all stay alive until evaluation
// ends, and the garbage collector copies them around; here each detection of
// the usual shape ({"image_id", "category_id", "score", "bbox",
// "segmentation": {"size", "counts"}} with numbers and a compressed RLE) is
// read field by field, its `counts` parsed into the reader's run buffer
// without a string in between.
//
// Anything else in an element (another key, a string image id, polygons,
// uncompressed RLE, escapes, a malformed counts string) hands that element's
// bytes to JSON.parse, so it is read exactly as JSON.parse reads it and its
// errors are the ones the generic path gives. Bytes that are not a JSON
// array of values make `scanResults` return false: the caller then parses the
// file whole, which reports the JSON error.

import type { RleSlab, RleView } from '../geometry/mask.js';

/** The `segmentation` of a detection whose compressed RLE the scanner parsed (handed over beside it). */
export const PARSED_RLE: unique symbol = Symbol('parsed RLE');

/** One detection as the scanner read it. */
export interface ScannedDetection {
  image_id?: number;
  category_id?: number;
  score?: number;
  bbox?: number[];
  segmentation?: typeof PARSED_RLE;
}

/**
 * Called per element in file order; `index` is its position in the array,
 * `mask` the runs of its compressed RLE when the scanner parsed them.
 */
export type OnDetection = (det: unknown, index: number, mask: RleView | undefined) => void;

const SP = 0x20, TAB = 0x09, LF = 0x0a, CR = 0x0d;
const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c, COLON = 0x3a;
const LBRACE = 0x7b, RBRACE = 0x7d, LBRACKET = 0x5b, RBRACKET = 0x5d;
const MINUS = 0x2d, PLUS = 0x2b, DOT = 0x2e, ZERO = 0x30, NINE = 0x39;

const POW10 = Array.from({ length: 23 }, (_, k) => 10 ** k);

/** Field names, as bytes, with the id the scanner dispatches on. */
const KEYS: [string, number][] = [['image_id', 1], ['category_id', 2], ['score', 3], ['bbox', 4], ['segmentation', 5], ['size', 6], ['counts', 7]];
/** The keys by their first letter (the byte after the opening quote). */
const KEYS_BY_FIRST: { bytes: Buffer; id: number }[][] = Array.from({ length: 256 }, () => []);
for (const [k, id] of KEYS) KEYS_BY_FIRST[k.charCodeAt(0)].push({ bytes: Buffer.from(`"${k}"`, 'latin1'), id });

class Scanner {
  p = 0;
  /** False once something the fast path does not take was met. */
  ok = true;
  /** The runs of the last detection's RLE. */
  mask: RleView | undefined;

  constructor(readonly b: Buffer, readonly slab: RleSlab) {}

  ws(): void {
    const b = this.b;
    let p = this.p;
    for (;;) {
      const c = b[p];
      if (c === SP || c === LF || c === CR || c === TAB) p++;
      else break;
    }
    this.p = p;
  }

  /** The id of the quoted key at p (0 if not one of KEYS), p moved past it. */
  key(): number {
    const b = this.b, p = this.p;
    const candidates = KEYS_BY_FIRST[b[p + 1]] ?? [];
    for (let c = 0; c < candidates.length; c++) {
      const { bytes, id } = candidates[c];
      if (p + bytes.length > b.length) continue;
      let j = 2;
      while (j < bytes.length && b[p + j] === bytes[j]) j++;
      if (j === bytes.length) {
        this.p = p + j;
        return id;
      }
    }
    return 0;
  }

  /** At `"key":` (spaces allowed): the key's id (0 for others, -1 when not a key), p at the value. */
  field(): number {
    this.ws();
    if (this.b[this.p] !== QUOTE) return -1;
    const k = this.key();
    this.ws();
    if (this.b[this.p++] !== COLON) return -1;
    this.ws();
    return k;
  }

  /** After an object member: 1 at a comma (another member follows), 0 at the closing brace, -1 otherwise. */
  memberEnd(): number {
    this.ws();
    const c = this.b[this.p++];
    return c === COMMA ? 1 : c === RBRACE ? 0 : -1;
  }

  /** A JSON number, exactly as JSON.parse reads it; NaN (and ok = false) when it is not one. */
  number(): number {
    const b = this.b;
    const start = this.p;
    let p = start;
    let neg = false;
    if (b[p] === MINUS) {
      neg = true;
      p++;
    }
    // All digits as one integer, and the power of ten that scales it.
    let v = 0;
    let digits = 0;
    let scale = 0;
    if (b[p] === ZERO) {
      p++;
      digits = 1;
    } else {
      while (b[p] >= ZERO && b[p] <= NINE) {
        v = v * 10 + (b[p] - ZERO);
        p++;
        digits++;
      }
    }
    if (digits === 0) return this.fail();
    if (b[p] === DOT) {
      p++;
      const d0 = p;
      while (b[p] >= ZERO && b[p] <= NINE) {
        v = v * 10 + (b[p] - ZERO);
        p++;
      }
      if (p === d0) return this.fail();
      digits += p - d0;
      scale = d0 - p;
    }
    if (b[p] === 0x65 || b[p] === 0x45) {
      p++;
      let eneg = false;
      if (b[p] === PLUS || b[p] === MINUS) eneg = b[p++] === MINUS;
      const d0 = p;
      let e = 0;
      while (b[p] >= ZERO && b[p] <= NINE) {
        if (e < 1e6) e = e * 10 + (b[p] - ZERO);
        p++;
      }
      if (p === d0) return this.fail();
      scale += eneg ? -e : e;
    }
    this.p = p;
    // Up to 15 digits are an exact integer and 10^0..10^22 exact doubles, so one
    // division or multiplication rounds once, correctly, as JSON.parse does.
    if (digits <= 15 && scale >= -22 && scale <= 22) {
      const x = scale < 0 ? v / POW10[-scale] : v * POW10[scale];
      return neg ? -x : x;
    }
    return Number(b.toString('latin1', start, p));
  }

  fail(): number {
    this.ok = false;
    return NaN;
  }

  /** `[` numbers `]`. */
  numbers(): number[] | undefined {
    const b = this.b;
    const out: number[] = [];
    this.p++;
    this.ws();
    if (b[this.p] === RBRACKET) {
      this.p++;
      return out;
    }
    for (;;) {
      this.ws();
      out.push(this.number());
      if (!this.ok) return undefined;
      this.ws();
      const c = b[this.p++];
      if (c === RBRACKET) return out;
      if (c !== COMMA) {
        this.ok = false;
        return undefined;
      }
    }
  }

  /** {"size": [h, w], "counts": "..."} in either order, counts parsed into the slab. */
  rle(): RleView | undefined {
    const b = this.b, slab = this.slab;
    let h = -1, w = -1, start = -1, end = -1;
    this.p++;
    for (;;) {
      const k = this.field();
      if (k === 6 && b[this.p] === LBRACKET) {
        const size = this.numbers();
        if (!size || size.length !== 2 || !Number.isInteger(size[0]) || !Number.isInteger(size[1]) || size[0] < 0 || size[1] < 0) return this.failRle();
        h = size[0];
        w = size[1];
      } else if (k === 7 && b[this.p] === QUOTE) {
        const q = b.indexOf(QUOTE, this.p + 1);
        if (q < 0) return this.failRle();
        start = slab.used;
        end = slab.appendCountsBytes(b, this.p + 1, q);
        if (end < 0) return this.failRle();
        this.p = q + 1;
      } else {
        return this.failRle();
      }
      const more = this.memberEnd();
      if (more < 0) return this.failRle();
      if (more === 0) break;
    }
    if (h < 0 || start < 0) return this.failRle();
    return { h, w, counts: slab.counts, start, end };
  }

  failRle(): undefined {
    this.ok = false;
    return undefined;
  }

  /** One element of the usual shape, or undefined (ok = false) when it is not. */
  detection(): ScannedDetection | undefined {
    const b = this.b;
    const det: ScannedDetection = {};
    this.mask = undefined;
    this.p++;
    this.ws();
    if (b[this.p] === RBRACE) {
      this.p++;
      return det;
    }
    for (;;) {
      const k = this.field();
      const c = b[this.p];
      const isNumber = c === MINUS || (c >= ZERO && c <= NINE);
      if (k === 1 && isNumber) det.image_id = this.number();
      else if (k === 2 && isNumber) det.category_id = this.number();
      else if (k === 3 && isNumber) det.score = this.number();
      else if (k === 4 && c === LBRACKET) det.bbox = this.numbers();
      else if (k === 5 && c === LBRACE) {
        // A key given twice keeps its last value, as in JSON.parse; the earlier mask's runs are left unused in the slab.
        this.mask = this.rle();
        det.segmentation = PARSED_RLE;
      } else return this.failRle();
      if (!this.ok) return undefined;
      const more = this.memberEnd();
      if (more < 0) return this.failRle();
      if (more === 0) return det;
    }
  }

  /** The end of the JSON value at p (strings, escapes and nesting followed, nothing checked), or -1. */
  skipValue(): number {
    const b = this.b, n = b.length;
    let p = this.p;
    let depth = 0;
    for (; p < n; p++) {
      const c = b[p];
      if (c === QUOTE) {
        p++;
        while (p < n && b[p] !== QUOTE) p += b[p] === BACKSLASH ? 2 : 1;
        if (p >= n) return -1;
        if (depth === 0) return p + 1;
      } else if (c === LBRACE || c === LBRACKET) depth++;
      else if (c === RBRACE || c === RBRACKET) {
        if (depth === 0) return p;
        if (--depth === 0) return p + 1;
      } else if (depth === 0 && (c === COMMA || c === SP || c === LF || c === CR || c === TAB)) return p;
    }
    return depth === 0 ? p : -1;
  }
}

/**
 * Hands each element of the results array in `bytes` to `onDetection`, in
 * order. Returns false (having perhaps handed some over) when the bytes are
 * not a JSON array; the caller then starts again with JSON.parse.
 */
export function scanResults(bytes: Buffer, slab: RleSlab, onDetection: OnDetection): boolean {
  const s = new Scanner(bytes, slab);
  const b = bytes;
  s.ws();
  if (b[s.p++] !== LBRACKET) return false;
  s.ws();
  let index = 0;
  if (b[s.p] === RBRACKET) {
    s.p++;
  } else {
    for (;;) {
      s.ws();
      const start = s.p;
      const mark = slab.used;
      let det: unknown;
      s.mask = undefined;
      if (b[start] === LBRACE) det = s.detection();
      if (det === undefined || !s.ok) {
        // Not the usual shape: JSON.parse reads this element, as it would read the whole file.
        slab.used = mark;
        s.ok = true;
        s.mask = undefined;
        s.p = start;
        const end = s.skipValue();
        if (end <= start) return false;
        try {
          det = JSON.parse(b.toString('utf8', start, end));
        } catch {
          return false;
        }
        s.p = end;
      }
      onDetection(det, index++, s.mask);
      s.ws();
      const c = b[s.p++];
      if (c === RBRACKET) break;
      if (c !== COMMA) return false;
    }
  }
  s.ws();
  return s.p === b.length;
}
