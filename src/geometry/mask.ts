// COCO masks in COCO's own formats, with pycocotools' exact semantics
// (maskApi.c of pycocotools 2.0.x, ported algorithm by algorithm): run-length
// encoding, the compressed `counts` string, polygon rasterisation on the 5×
// upsampled grid, area, bounding box, union/intersection and IoU with the
// `iscrowd` rule. The evaluator, the fixtures, CondInst and the viewer share
// these, so a mask means the same pixels everywhere in casl.
//
// Layout: RLE counts are column-major (pixel index = x * h + y), alternating
// runs of 0s and 1s, starting with a (possibly empty) run of 0s. Binary masks
// handed to or returned by this module are row-major H×W (index = y * w + x),
// the layout of decoded images and model outputs.

import type { Rle } from '../records.js';

/** A decoded RLE: `counts` sum to h * w when the mask is well formed. */
export interface RleMask {
  h: number;
  w: number;
  counts: Uint32Array;
}

/** COCO box [x, y, w, h]. */
export type Box = [number, number, number, number];

/** A COCO `segmentation`: polygons (arrays or typed arrays of x, y), uncompressed RLE or compressed RLE. */
export type Segmentation = ArrayLike<number>[] | Rle;

/** Thrown for a malformed mask; the caller adds where it came from. */
export class MaskError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MaskError';
  }
}

const ZERO_RUN = new Uint32Array(0);

/** Run-length encodes a row-major H×W mask (nonzero = inside), like rleEncode. */
export function encodeMask(mask: ArrayLike<number>, h: number, w: number): RleMask {
  if (mask.length !== h * w) throw new MaskError(`mask has ${mask.length} pixels, expected ${h}×${w} = ${h * w}`);
  const out: number[] = [];
  let p = 0;
  let c = 0;
  for (let x = 0; x < w; x++) {
    for (let y = 0, i = x; y < h; y++, i += w) {
      const v = mask[i] ? 1 : 0;
      if (v !== p) {
        out.push(c);
        c = 0;
        p = v;
      }
      c++;
    }
  }
  out.push(c);
  return { h, w, counts: Uint32Array.from(out) };
}

/** Decodes to a row-major H×W mask of 0/1 bytes. Throws if the counts overrun h * w. */
export function decodeMask(rle: RleMask): Uint8Array {
  const { h, w, counts } = rle;
  const out = new Uint8Array(h * w);
  let pos = 0;
  let v = 0;
  for (let j = 0; j < counts.length; j++) {
    const n = counts[j];
    if (pos + n > h * w) throw new MaskError(`RLE counts cover more than ${h}×${w} pixels`);
    if (v) {
      for (let k = pos; k < pos + n; k++) out[(k % h) * w + Math.floor(k / h)] = 1;
    }
    pos += n;
    v ^= 1;
  }
  return out;
}

/** Sum of the counts: h * w for a well-formed RLE. */
export function rleLength(rle: RleMask): number {
  let s = 0;
  for (let j = 0; j < rle.counts.length; j++) s += rle.counts[j];
  return s;
}

/**
 * The compressed `counts` string (rleToString): LEB128-like, 6 bits a char
 * in ASCII 48..111, each count after the third stored as the difference to
 * the count two before it.
 */
export function rleToString(counts: Uint32Array): string {
  const chars: number[] = [];
  for (let i = 0; i < counts.length; i++) {
    let x = counts[i];
    if (i > 2) x -= counts[i - 2];
    let more = true;
    while (more) {
      let c = x & 0x1f;
      // An arithmetic shift on the exact value: counts may exceed int32.
      x = Math.floor(x / 32);
      more = c & 0x10 ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      chars.push(c + 48);
    }
  }
  let s = '';
  for (let i = 0; i < chars.length; i += 8192) s += String.fromCharCode(...chars.slice(i, i + 8192));
  return s;
}

// rleFromPolygon's boundary points and column crossings, grown on demand.
let polyX = new Int32Array(256);
let polyY = new Int32Array(256);
let polyScratch = new Uint32Array(4096);

// Decoding scratch, grown on demand: one allocation per decoded RLE, not two.
let scratch = new Uint32Array(1024);

/**
 * Parses a compressed `counts` string (rleFrString) into out[at ..]; returns
 * the end. `out` must have room for s.length counts past `at` (every count
 * takes at least one char).
 */
function parseCountsInto(s: string, out: Uint32Array, at: number): number {
  const len = s.length;
  let m = at;
  let p = 0;
  while (p < len) {
    let x = 0;
    let k = 0;
    let c: number;
    do {
      if (p >= len) throw new MaskError(`RLE counts string ends inside a number (at char ${p})`);
      c = s.charCodeAt(p) - 48;
      // One unsigned test: below '0' wraps around past 63.
      if (c >>> 0 > 63) {
        throw new MaskError(`RLE counts string has '${s[p]}' at char ${p}; only ASCII '0'..'o' occur in COCO's format`);
      }
      x |= (c & 0x1f) << k;
      k += 5;
      p++;
    } while (c & 0x20);
    if (c & 0x10) x |= -1 << k;
    if (m - at > 2) x += out[m - 2];
    out[m++] = x >>> 0;
  }
  return m;
}

/** Parses a compressed `counts` string (rleFrString). */
export function rleFromString(s: string, h: number, w: number): RleMask {
  if (scratch.length < s.length) scratch = new Uint32Array(Math.max(s.length, scratch.length * 2));
  const m = parseCountsInto(s, scratch, 0);
  return { h, w, counts: scratch.slice(0, m) };
}

/** An RLE whose counts are counts[start .. end) of a buffer shared with other masks. */
export interface RleView {
  h: number;
  w: number;
  counts: Uint32Array;
  start: number;
  end: number;
}

/** An RleMask as a view of its own counts. */
export function rleView(rle: RleMask): RleView {
  return { h: rle.h, w: rle.w, counts: rle.counts, start: 0, end: rle.counts.length };
}

/**
 * Many masks' counts appended to one growing buffer, compressed strings
 * parsed straight into it: no typed array per mask (allocating one costs
 * more than parsing a short mask). Growing copies into a new buffer, so
 * views handed out earlier stay valid; after clear() they are not.
 */
export class RleSlab {
  counts: Uint32Array;
  used = 0;

  /**
   * `capacity`: counts to reserve. A generous bound costs address space, not
   * memory (pages are touched as runs are written), and saves the copies of
   * growing: a results file's byte length bounds its masks' counts.
   */
  constructor(capacity = 1 << 18) {
    this.counts = new Uint32Array(capacity);
  }

  room(n: number): void {
    if (this.used + n <= this.counts.length) return;
    const grown = new Uint32Array(Math.max(this.used + n, 2 * this.counts.length));
    grown.set(this.counts.subarray(0, this.used));
    this.counts = grown;
  }

  /** Appends the masks of a JSON RLE (compressed or not), as rleFromJson reads it. */
  appendJson(rle: Rle): RleView {
    if (rle && typeof rle.counts === 'string' && Array.isArray(rle.size) && rle.size.length === 2) {
      const h = rle.size[0], w = rle.size[1];
      if (Number.isInteger(h) && h >= 0 && Number.isInteger(w) && w >= 0) {
        this.room(rle.counts.length);
        const start = this.used;
        this.used = parseCountsInto(rle.counts, this.counts, start);
        return { h, w, counts: this.counts, start, end: this.used };
      }
    }
    return this.append(rleFromJson(rle));
  }

  /**
   * Parses a compressed `counts` string written in JSON, bytes[from .. to)
   * (between its quotes; `\\` is the one escape COCO's characters need),
   * straight into the buffer. Returns the end of the new runs, or -1 (nothing
   * appended) when the bytes are anything else, so the caller can read them
   * the long way and report the problem as rleFromString does.
   */
  appendCountsBytes(bytes: Uint8Array, from: number, to: number): number {
    this.room(to - from);
    const out = this.counts;
    const at = this.used;
    let m = at;
    let p = from;
    while (p < to) {
      let x = 0;
      let k = 0;
      let c: number;
      do {
        if (p >= to) return -1;
        c = bytes[p++];
        if (c === 0x5c) {
          if (p >= to || bytes[p] !== 0x5c) return -1;
          p++;
        }
        c -= 48;
        if (c >>> 0 > 63) return -1;
        x |= (c & 0x1f) << k;
        k += 5;
      } while (c & 0x20);
      if (c & 0x10) x |= -1 << k;
      if (m - at > 2) x += out[m - 2];
      out[m++] = x >>> 0;
    }
    this.used = m;
    return m;
  }

  /** Appends a copy of an RLE's counts. */
  append(rle: RleMask): RleView {
    const n = rle.counts.length;
    this.room(n);
    const start = this.used;
    this.counts.set(rle.counts, start);
    this.used += n;
    return { h: rle.h, w: rle.w, counts: this.counts, start, end: this.used };
  }

  /** Forgets every mask (views handed out before now read whatever comes next). */
  clear(): void {
    this.used = 0;
  }
}

/** The JSON form (compressed) of an RLE. */
export function rleToJson(rle: RleMask): Rle {
  return { size: [rle.h, rle.w], counts: rleToString(rle.counts) };
}

/** Reads a JSON RLE, compressed (`counts` string) or uncompressed (`counts` numbers). */
export function rleFromJson(rle: Rle): RleMask {
  if (!rle || !Array.isArray(rle.size) || rle.size.length !== 2 || !rle.size.every((v) => Number.isInteger(v) && v >= 0)) {
    throw new MaskError(`RLE needs "size": [h, w] of non-negative integers, got ${JSON.stringify(rle?.size)}`);
  }
  const [h, w] = rle.size;
  if (typeof rle.counts === 'string') return rleFromString(rle.counts, h, w);
  if (Array.isArray(rle.counts)) {
    const counts = new Uint32Array(rle.counts.length);
    for (let i = 0; i < counts.length; i++) {
      const v = rle.counts[i];
      if (!Number.isInteger(v) || v < 0) throw new MaskError(`uncompressed RLE count ${i} is ${JSON.stringify(v)}, not a non-negative integer`);
      counts[i] = v;
    }
    return { h, w, counts };
  }
  throw new MaskError('RLE "counts" must be a string (compressed) or an array of integers (uncompressed)');
}

/**
 * Rasterises one polygon [x0, y0, x1, y1, ...] exactly like rleFrPoly: the
 * boundary is walked on a 5× upsampled grid, and only the crossings of pixel
 * column centres are kept, rounded the way the C code rounds them.
 *
 * rleFrPoly lists every upsampled boundary point, then keeps the
 * consecutive pairs (u, v), (u', v') whose u differs and whose min(u, u')
 * (the C code's `u[j] < u[j-1] ? u[j] : u[j] - 1`, as u moves by at most 1
 * a step) is a column centre, 5·x + 2. The crossings are sorted afterwards,
 * so their order does not matter: here each segment is walked on its own
 * (segments meet at a shared point, which never changes u), and a segment
 * that moves along x (one u step per point) jumps from centre to centre,
 * computing v at just the two points of each pair with the C code's formula.
 */
export function rleFromPolygon(xy: ArrayLike<number>, h: number, w: number): RleMask {
  const scale = 5;
  const k = Math.floor(xy.length / 2);
  if (polyX.length < k + 1) {
    polyX = new Int32Array(Math.max(k + 1, 2 * polyX.length));
    polyY = new Int32Array(polyX.length);
  }
  const x = polyX, y = polyY;
  // C's (int) cast truncates toward zero (|0 as an Int32Array store would).
  for (let j = 0; j < k; j++) {
    x[j] = (scale * xy[j * 2] + 0.5) | 0;
    y[j] = (scale * xy[j * 2 + 1] + 0.5) | 0;
  }
  x[k] = x[0];
  y[k] = y[0];
  // At most one crossing per boundary point.
  let bound = 1;
  for (let j = 0; j < k; j++) bound += Math.max(Math.abs(x[j] - x[j + 1]), Math.abs(y[j] - y[j + 1])) + 1;
  if (polyScratch.length < bound) polyScratch = new Uint32Array(Math.max(bound, 2 * polyScratch.length));
  const a = polyScratch;
  let m = 0;
  for (let j = 0; j < k; j++) {
    let xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1];
    const dx = Math.abs(xe - xs), dy = Math.abs(ys - ye);
    if (dx === 0 && dy === 0) continue;
    if ((dx >= dy && xs > xe) || (dx < dy && ys > ye)) {
      let t = xs; xs = xe; xe = t;
      t = ys; ys = ye; ye = t;
    }
    if (dx >= dy) {
      // u = xs + t: the pair (t, t + 1) has min u = xs + t.
      const s = (ye - ys) / dx;
      for (let t = (((2 - xs) % 5) + 5) % 5; t < dx; t += 5) {
        const xd = (xs + t - 2) / 5;
        if (xd < 0 || xd > w - 1) continue;
        const v0 = (ys + s * t + 0.5) | 0, v1 = (ys + s * (t + 1) + 0.5) | 0;
        a[m++] = (xd * h + crossingRow(v0 < v1 ? v0 : v1, h)) >>> 0;
      }
    } else {
      const s = (xe - xs) / dy;
      // C's (int)(xs + s·0 + .5): not xs when xs < 0, which only matters left of column 0.
      let pu = (xs + 0.5) | 0;
      for (let t = 1; t <= dy; t++) {
        const u = (xs + s * t + 0.5) | 0;
        if (u === pu) continue;
        const lo = u < pu ? u : pu;
        pu = u;
        if (lo < 2 || (lo - 2) % 5 !== 0) continue;
        const xd = (lo - 2) / 5;
        if (xd > w - 1) continue;
        // v = ys + t: the pair's lower v is ys + t - 1.
        a[m++] = (xd * h + crossingRow(ys + t - 1, h)) >>> 0;
      }
    }
  }
  a[m++] = (h * w) >>> 0;
  const sorted = a.subarray(0, m).sort();
  // Runs between crossings; zero gaps merge their neighbours (two crossings at one pixel cancel).
  let p = 0;
  for (let j = 0; j < m; j++) {
    const t = sorted[j];
    sorted[j] -= p;
    p = t;
  }
  let n = 0;
  let j = 0;
  sorted[n++] = sorted[j++];
  while (j < m) {
    if (sorted[j] > 0) sorted[n++] = sorted[j++];
    else {
      j++;
      if (j < m) sorted[n - 1] += sorted[j++];
    }
  }
  return { h, w, counts: sorted.slice(0, n) };
}

/** The row where a crossing between upsampled rows v and v + 1 enters: rleFrPoly's yd. */
function crossingRow(v: number, h: number): number {
  let yd = (v + 0.5) / 5 - 0.5;
  if (yd < 0) yd = 0;
  else if (yd > h) yd = h;
  return Math.ceil(yd);
}

/** A box [x, y, w, h] as a mask (rleFrBbox: its four corners as a polygon). */
export function rleFromBox(box: ArrayLike<number>, h: number, w: number): RleMask {
  const xs = box[0], xe = xs + box[2], ys = box[1], ye = ys + box[3];
  return rleFromPolygon([xs, ys, xs, ye, xe, ye, xe, ys], h, w);
}

/** Union (or intersection) of RLEs of one size (rleMerge); sizes that differ give an empty 0×0 RLE, as in C. */
export function rleMerge(rles: RleMask[], intersect = false): RleMask {
  if (rles.length === 0) return { h: 0, w: 0, counts: ZERO_RUN };
  let { h, w } = rles[0];
  if (rles.length === 1) return { h, w, counts: rles[0].counts.slice() };
  let cnts = rles[0].counts.slice();
  for (let i = 1; i < rles.length; i++) {
    const B = rles[i];
    if (B.h !== h || B.w !== w) return { h: 0, w: 0, counts: ZERO_RUN };
    const A = cnts;
    const out: number[] = [];
    let ca = A[0], cb = B.counts[0];
    let v = 0, va = 0, vb = 0, a = 1, b = 1, cc = 0, ct = 1;
    while (ct > 0) {
      const c = Math.min(ca, cb);
      cc += c;
      ct = 0;
      ca -= c;
      if (!ca && a < A.length) { ca = A[a++]; va ^= 1; }
      ct += ca;
      cb -= c;
      if (!cb && b < B.counts.length) { cb = B.counts[b++]; vb ^= 1; }
      ct += cb;
      const vp = v;
      v = intersect ? va & vb : va | vb;
      if (v !== vp || ct === 0) {
        out.push(cc);
        cc = 0;
      }
    }
    cnts = Uint32Array.from(out);
  }
  return { h, w, counts: cnts };
}

/** Number of pixels inside (rleArea). */
export function rleArea(rle: RleMask): number {
  let a = 0;
  for (let j = 1; j < rle.counts.length; j += 2) a += rle.counts[j];
  return a >>> 0;
}

/**
 * Tight box [x, y, w, h] of a mask (rleToBbox of pycocotools 2.0.x): a run
 * that wraps from one column to the next spans the whole height.
 */
export function rleToBbox(rle: RleMask): Box {
  return rleStats(rle).box;
}

/** Pixel total (h * w when well formed), area and rleToBbox's box, in one pass over the runs. */
export function rleStats(rle: RleMask): RleStats {
  return rangeStats(rle.counts, 0, rle.counts.length, rle.h, rle.w);
}

/** rleStats of a mask held in a shared buffer. */
export function rleViewStats(v: RleView): RleStats {
  return rangeStats(v.counts, v.start, v.end, v.h, v.w);
}

export interface RleStats {
  length: number;
  area: number;
  box: Box;
}

function rangeStats(counts: Uint32Array, start: number, end: number, h: number, w: number): RleStats {
  const len = end - start;
  const m = Math.floor(len / 2) * 2;
  let xs = w, ys = h, xe = 0, ye = 0, cc = 0, area = 0;
  // Column of `cc`: recomputed only when a run ends past the current column.
  let col = 0, colStart = 0;
  for (let j = start; j < end; j++) {
    const n = counts[j];
    if (((j - start) & 1) === 0 || n === 0) {
      cc += n;
      continue;
    }
    area += n;
    if (h === 0) {
      cc += n;
      continue;
    }
    // Most gaps end in the next column: a step, not a division.
    if (cc - colStart >= h) {
      if (cc - colStart < 2 * h) { col++; colStart += h; } else { col = Math.floor(cc / h); colStart = col * h; }
    }
    const xStart = col, yStart = cc - colStart;
    const last = cc + n - 1;
    if (last - colStart >= h) {
      if (last - colStart < 2 * h) { col++; colStart += h; } else { col = Math.floor(last / h); colStart = col * h; }
    }
    const xEnd = col, yEnd = last - colStart;
    cc += n;
    if (xStart < xs) xs = xStart;
    if (xEnd > xe) xe = xEnd;
    if (xStart < xEnd) {
      ys = 0;
      ye = h - 1;
    } else {
      if (yStart < ys) ys = yStart;
      if (yEnd > ye) ye = yEnd;
    }
  }
  // An RLE of fewer than two runs has an empty box; otherwise C's uint
  // arithmetic, which wraps when no run is inside.
  const box: Box = m === 0 || h === 0 ? [0, 0, 0, 0] : [xs, ys, (xe - xs + 1) >>> 0, (ye - ys + 1) >>> 0];
  return { length: cc, area: area >>> 0, box };
}

function isFinitePolygon(poly: unknown): poly is ArrayLike<number> {
  if (poly instanceof Float64Array) {
    for (let j = 0; j < poly.length; j++) if (!Number.isFinite(poly[j])) return false;
    return true;
  }
  if (!(Array.isArray(poly) || ArrayBuffer.isView(poly))) return false;
  const a = poly as ArrayLike<unknown>;
  for (let j = 0; j < a.length; j++) if (typeof a[j] !== 'number' || !Number.isFinite(a[j])) return false;
  return true;
}

/**
 * The mask of a COCO `segmentation` on an h×w image (COCO.annToRLE):
 * polygons are rasterised and merged, uncompressed RLE is taken as is,
 * compressed RLE is parsed. h, w are the image's; RLEs carry their own size.
 */
export function segmentationToRle(segm: Segmentation, h: number, w: number): RleMask {
  if (Array.isArray(segm)) {
    if (segm.length === 0) return { h, w, counts: Uint32Array.of(h * w) };
    const parts: RleMask[] = [];
    for (let i = 0; i < segm.length; i++) {
      const poly = segm[i];
      if (!isFinitePolygon(poly)) throw new MaskError(`polygon ${i} is not an array of finite numbers`);
      parts.push(rleFromPolygon(poly, h, w));
    }
    return parts.length === 1 ? parts[0] : rleMerge(parts);
  }
  if (segm && typeof segm === 'object') return rleFromJson(segm);
  throw new MaskError('segmentation must be a list of polygons or an RLE object {size, counts}');
}

/**
 * IoU of boxes [x, y, w, h] (bbIou): no +1, and for a crowd box the union is
 * the detection's own area. Writes o[d * nG + g] for dt d, gt g; nD, nG
 * default to the arrays' lengths (callers with reused buffers pass them).
 */
export function boxIou(
  dt: Float64Array, gt: Float64Array, iscrowd: Uint8Array, o: Float64Array, nD = dt.length >> 2, nG = gt.length >> 2,
): Float64Array {
  for (let g = 0; g < nG; g++) {
    const gx = gt[g * 4], gy = gt[g * 4 + 1], gw = gt[g * 4 + 2], gh = gt[g * 4 + 3];
    const ga = gw * gh;
    const crowd = iscrowd[g] !== 0;
    for (let d = 0; d < nD; d++) {
      const dx = dt[d * 4], dy = dt[d * 4 + 1], dw = dt[d * 4 + 2], dh = dt[d * 4 + 3];
      const da = dw * dh;
      let val = 0;
      const iw = Math.min(dw + dx, gw + gx) - Math.max(dx, gx);
      if (iw > 0) {
        const ih = Math.min(dh + dy, gh + gy) - Math.max(dy, gy);
        if (ih > 0) {
          const i = iw * ih;
          val = i / (crowd ? da : da + ga - i);
        }
      }
      o[d * nG + g] = val;
    }
  }
  return o;
}

/**
 * Intersection pixel count of two same-size RLEs, a[a0 .. a1) and b[b0 ..
 * b1), one pass over their runs; the union goes to `unionOut[0]`.
 */
function intersectUnion(
  a: Uint32Array, a0: number, a1: number, b: Uint32Array, b0: number, b1: number, unionOut: Float64Array,
): number {
  let ca = a1 > a0 ? a[a0] : 0, cb = b1 > b0 ? b[b0] : 0;
  let va = 0, vb = 0, ia = a0 + 1, ib = b0 + 1, inter = 0, uni = 0, ct = 1;
  while (ct > 0) {
    const c = ca < cb ? ca : cb;
    if (va | vb) {
      uni += c;
      if (va & vb) inter += c;
    }
    ca -= c;
    if (ca === 0 && ia < a1) { ca = a[ia++]; va ^= 1; }
    cb -= c;
    if (cb === 0 && ib < b1) { cb = b[ib++]; vb ^= 1; }
    ct = ca + cb;
  }
  unionOut[0] = uni;
  return inter;
}

const unionScratch = new Float64Array(1);

/** Pixels inside counts[start .. end). */
function rangeArea(counts: Uint32Array, start: number, end: number): number {
  let a = 0;
  for (let j = start + 1; j < end; j += 2) a += counts[j];
  return a >>> 0;
}

/**
 * rleIou's exact step for one pair of same-size masks: intersection over
 * union, or over the detection's area when the ground truth is a crowd; 0
 * when they do not intersect.
 */
export function rlePairIou(dt: Uint32Array, gt: Uint32Array, crowd: boolean): number {
  const i = intersectUnion(dt, 0, dt.length, gt, 0, gt.length, unionScratch);
  if (i === 0) return 0;
  return i / (crowd ? rangeArea(dt, 0, dt.length) : unionScratch[0]);
}

/** Boxes of RLEs packed [x, y, w, h] per mask, for `rleIou`'s box prefilter. */
export function rleBoxes(rles: RleMask[]): Float64Array {
  const out = new Float64Array(rles.length * 4);
  rles.forEach((r, i) => out.set(rleToBbox(r), i * 4));
  return out;
}

/**
 * IoU of masks (rleIou): pairs whose boxes do not overlap are 0 without
 * walking runs, pairs of different sizes are -1, and for crowd ground truth
 * the union is the detection's area. Writes o[d * nG + g]. Boxes are the
 * masks' `rleBoxes`, passed in so callers can compute them once.
 */
export function maskIou(
  dt: RleMask[], dtBoxes: Float64Array, gt: RleMask[], gtBoxes: Float64Array, iscrowd: Uint8Array, o: Float64Array,
): Float64Array {
  return maskViewIou(dt.map(rleView), dtBoxes, gt.map(rleView), gtBoxes, iscrowd, o);
}

/** maskIou of masks held in shared buffers. */
export function maskViewIou(
  dt: RleView[], dtBoxes: Float64Array, gt: RleView[], gtBoxes: Float64Array, iscrowd: Uint8Array, o: Float64Array,
): Float64Array {
  const nD = dt.length, nG = gt.length;
  boxIou(dtBoxes, gtBoxes, iscrowd, o, nD, nG);
  for (let d = 0; d < nD; d++) {
    const a = dt[d];
    for (let g = 0; g < nG; g++) {
      if (!(o[d * nG + g] > 0)) continue;
      const b = gt[g];
      if (a.h !== b.h || a.w !== b.w) {
        o[d * nG + g] = -1;
        continue;
      }
      const i = intersectUnion(a.counts, a.start, a.end, b.counts, b.start, b.end, unionScratch);
      o[d * nG + g] = i === 0 ? 0 : i / (iscrowd[g] !== 0 ? rangeArea(a.counts, a.start, a.end) : unionScratch[0]);
    }
  }
  return o;
}
