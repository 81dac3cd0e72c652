// The viewer's HTTP server (node:http): the static page, a JSON API over the
// JSONL index, and images rendered by sharp. It serves while the index is
// being built: pages of the file's head are read straight from its start, so
// a large file's first page does not wait for its last line; counts and the
// δ-dependent filters wait for the index. Every image goes through
// resolveUnderRoot, and every static file is looked up by exact name in a
// list made at start, so no request names a path on disk.
//
//   GET /                      the page (src/view/static/index.html)
//   GET /static/NAME           its scripts and styles
//   GET /api/info              file, sizes, whether --gt was given, the score histogram (null while indexing)
//   GET /api/counts?delta=D    the δ filter's counts at D (score > D)
//   GET /api/page?delta=D&filter=F&page=P   one page of tiles in filter F's order
//   GET /thumb/I, /image/I     record I's image as a thumbnail / display-size JPEG
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { PROJECT_ROOT } from '../cli/options.js';
import type { Instance, PredictionRecord } from '../records.js';
import type { GroundTruth } from './ground-truth.js';
import { matchToGroundTruth } from './ground-truth.js';
import { type IdleGate, type JsonlIndex, Kind, type LineRef, readHead } from './jsonl-index.js';
import { isErrorRecord, predictionRecordProblem } from '../records.js';
import { resolveUnderRoot } from './safe-path.js';
import { ImageServer } from './thumbnails.js';

export const STATIC_DIR = path.join(PROJECT_ROOT, 'src', 'view', 'static');

/** Bins of the score histogram drawn under the slider (δ steps of 0.01). */
const PROFILE_BINS = 100;

export const FILTERS = ['all', 'dropped', 'most', 'recall', 'errors'] as const;
export type Filter = (typeof FILTERS)[number];

export interface ViewOptions {
  /** The index, or its promise while it is built. */
  index: JsonlIndex | Promise<JsonlIndex>;
  /** The JSONL's path (its head is read from it while indexing) and an open handle for positioned reads. */
  file: string;
  jsonl: FileHandle;
  /** Real path of --root. */
  root: string;
  gt?: GroundTruth;
  pageSize: number;
  thumbSize: number;
  imageSize: number;
  cacheBytes: number;
  /** Loopback binding: refuse requests whose Host is not a loopback name (DNS rebinding). */
  loopbackOnly: boolean;
  /** Told when image and page requests start and end, so the index build yields to them (never those that wait for it). */
  gate?: IdleGate;
}

export interface Tile {
  index: number;
  line: number;
  image_id?: number;
  file_name?: string;
  width?: number;
  height?: number;
  instances?: Instance[];
  kept?: number;
  /** Per non-crowd GT box, the score of the prediction matched to it (null: none); recall at δ = #(> δ) / length. */
  gtMatch?: (number | null)[];
  gt?: number[][];
  error?: string;
  thumb?: string;
}

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

// Nothing on the page comes from the network: it works offline, and a record
// cannot make the page fetch anything.
const CSP = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'";

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export function createViewServer(o: ViewOptions): Server {
  const statics = new Map<string, Buffer>();
  for (const name of readdirSync(STATIC_DIR)) {
    if (MIME[path.extname(name)]) statics.set(name, readFileSync(path.join(STATIC_DIR, name)));
  }
  const images = new ImageServer(o.cacheBytes);
  // Thumbnail URLs carry this, so a browser never shows a thumbnail cached
  // from another run of the viewer on the same port.
  const version = Date.now().toString(36);
  const orders = new Map<string, Int32Array>();
  let index: JsonlIndex | null = null;
  const ready = Promise.resolve(o.index).then((ix) => (index = ix));
  // A failed build is reported by the command and by each request that waits for it.
  ready.catch(() => undefined);
  /** The first records' lines, read from the file's start while the index is built. */
  let head: { refs: LineRef[]; complete: boolean } = { refs: [], complete: false };

  /** Where record i's line is, from the index or the head read so far; null when neither has it yet. */
  const locateNow = (i: number): LineRef | null => {
    if (index) return i < index.count ? { offset: index.offsets[i], length: index.lengths[i], line: index.lines[i] } : null;
    return i < head.refs.length ? head.refs[i] : null;
  };

  const locate = async (i: number): Promise<LineRef> => {
    const ref = locateNow(i) ?? (await ready, locateNow(i));
    if (!ref) throw new HttpError(404, `no record ${i} (the file has ${index!.count})`);
    return ref;
  };

  const readText = async (ref: LineRef): Promise<string> => {
    const buf = Buffer.alloc(ref.length);
    await o.jsonl.read(buf, 0, buf.length, ref.offset);
    return buf.toString('utf8');
  };

  /** Record i parsed: a prediction record, or why it is not one. */
  const readRecord = async (i: number): Promise<{ ref: LineRef; rec?: PredictionRecord; error?: string; file_name?: string }> => {
    const ref = await locate(i);
    let rec: unknown;
    try {
      rec = JSON.parse(await readText(ref));
    } catch (e) {
      return { ref, error: `line ${ref.line}: not JSON (${(e as Error).message})` };
    }
    if (isErrorRecord(rec)) return { ref, file_name: rec.file_name, error: `error record from stage '${rec.stage}': ${rec.error}` };
    const why = predictionRecordProblem(rec);
    if (why) return { ref, error: `line ${ref.line}: not a prediction record: ${why}` };
    return { ref, rec: rec as PredictionRecord };
  };

  /** Record indices in filter F's order at δ; cached, since paging asks again and again. */
  const order = (ix: JsonlIndex, filter: Filter, delta: number): Int32Array | null => {
    if (filter === 'all') return null;
    const key = `${filter}|${delta}`;
    const hit = orders.get(key);
    if (hit) return hit;
    const picked: number[] = [];
    for (let i = 0; i < ix.count; i++) {
      const pred = ix.kinds[i] === Kind.Prediction;
      if (filter === 'errors') {
        if (!pred || ix.refused[i]) picked.push(i);
        continue;
      }
      if (!pred) continue;
      if (filter === 'dropped' && ix.keptAt(i, delta) > 0) continue;
      if (filter === 'recall' && ix.gtCount(i) === 0) continue;
      picked.push(i);
    }
    const arr = Int32Array.from(picked);
    if (filter === 'most') {
      const kept = new Float64Array(ix.count);
      for (const i of arr) kept[i] = ix.keptAt(i, delta);
      arr.sort((a, b) => kept[b] - kept[a] || a - b);
    } else if (filter === 'recall') {
      const rec = new Float64Array(ix.count);
      for (const i of arr) rec[i] = ix.recallAt(i, delta)!;
      arr.sort((a, b) => rec[a] - rec[b] || ix.gtCount(b) - ix.gtCount(a) || a - b);
    }
    if (orders.size >= 16) orders.delete(orders.keys().next().value!);
    orders.set(key, arr);
    return arr;
  };

  const parseDelta = (url: URL): number => {
    const raw = url.searchParams.get('delta') ?? '0';
    const d = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(d)) throw new HttpError(400, `delta must be a number, got '${raw}'`);
    return d;
  };

  const recordIndex = (raw: string): number => {
    if (!/^\d+$/.test(raw)) throw new HttpError(404, `no record '${raw}'`);
    return Number(raw);
  };

  // A page's thumbnails start rendering while its JSON is on the way, so the
  // browser's requests for them find them done or in progress; errors show
  // up when the browser asks.
  const warm = (file: string): Promise<unknown> => images.render(file, o.thumbSize).catch(() => undefined);

  /** Record i parsed back, as a tile: an error tile when it is not a prediction or its file is refused. */
  const tile = async (i: number, delta: number, warming?: Promise<unknown>[]): Promise<Tile> => {
    const { ref, rec: p, error, file_name } = await readRecord(i);
    const base: Tile = { index: i, line: ref.line };
    if (!p) return { ...base, file_name, error };
    const t: Tile = {
      ...base,
      image_id: p.image_id,
      file_name: p.file_name,
      width: p.width,
      height: p.height,
      instances: p.instances,
      // The same strict rule as the index's counts and casl filter.
      kept: p.instances.filter((inst) => inst.score > delta).length,
    };
    if (o.gt) {
      const matched = matchToGroundTruth(p, o.gt).sort((x, y) => y - x);
      if (matched.length > 0) t.gtMatch = matched.map((s) => (s === -Infinity ? null : s));
    }
    const gtIm = o.gt?.lookup(p);
    if (gtIm) t.gt = gtIm.boxes;
    if (typeof p.file_name !== 'string') return { ...t, error: `line ${ref.line}: the record has no 'file_name', so no image to show` };
    const file = await resolveUnderRoot(o.root, p.file_name);
    if (!file.ok) return { ...t, error: file.error };
    if (!t.width || !t.height) {
      try {
        Object.assign(t, await images.size(file.path));
      } catch (e) {
        return { ...t, error: `cannot read image ${p.file_name}: ${(e as Error).message}` };
      }
    }
    t.thumb = `/thumb/${i}?v=${version}`;
    warming?.push(warm(file.path));
    return t;
  };

  /** The first prediction's `meta` (model, backend, aug, the δ it was already filtered at): what the file is. */
  let meta: Promise<unknown> | undefined;
  const firstMeta = (): Promise<unknown> => {
    meta ??= (async () => {
      const { refs } = await readHead(o.file, 100);
      for (const ref of refs) {
        try {
          const rec = JSON.parse(await readText(ref)) as PredictionRecord;
          if (predictionRecordProblem(rec) === null) return rec.meta ?? null;
        } catch {
          // Not JSON: look at the next line.
        }
      }
      return null;
    })();
    return meta;
  };

  const prefetchAfter = (warming: Promise<unknown>[], next: number[]) => {
    void Promise.all(warming).then(async () => {
      for (const i of next) {
        if (!locateNow(i)) continue;
        const { rec } = await readRecord(i);
        if (typeof rec?.file_name !== 'string') continue;
        const file = await resolveUnderRoot(o.root, rec.file_name);
        if (file.ok) warm(file.path);
      }
    }).catch(() => undefined);
  };

  /** Runs a request's work with the index build held back (see IdleGate). */
  const busy = async <T>(work: () => Promise<T>): Promise<T> => {
    o.gate?.begin();
    try {
      return await work();
    } finally {
      o.gate?.end();
    }
  };

  const sendJson = (res: ServerResponse, status: number, body: unknown) => {
    const data = Buffer.from(JSON.stringify(body));
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': data.length, 'Cache-Control': 'no-store' });
    res.end(data);
  };

  const serveImage = async (res: ServerResponse, i: number, maxSide: number) => {
    const { rec } = await readRecord(i);
    if (!rec) throw new HttpError(404, `record ${i} is not a prediction record`);
    if (typeof rec.file_name !== 'string') throw new HttpError(404, `record ${i} has no file_name`);
    const file = await resolveUnderRoot(o.root, rec.file_name);
    if (!file.ok) throw new HttpError(file.status, file.error);
    let r;
    try {
      r = await images.render(file.path, maxSide);
    } catch (e) {
      throw new HttpError(422, `cannot decode ${rec.file_name}: ${(e as Error).message}`);
    }
    res.writeHead(200, { 'Content-Type': 'image/jpeg', 'Content-Length': r.jpeg.length, 'Cache-Control': 'private, max-age=3600' });
    res.end(r.jpeg);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'only GET');
    if (o.loopbackOnly) {
      const host = (req.headers.host ?? '').replace(/:\d+$/, '');
      if (!['127.0.0.1', 'localhost', '[::1]'].includes(host)) throw new HttpError(403, `Host '${host}' is not a loopback name`);
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    const p = url.pathname;
    if (p === '/' || p === '/index.html') return sendStatic(res, 'index.html');
    if (p.startsWith('/static/')) return sendStatic(res, decodeURIComponent(p.slice('/static/'.length)));
    if (p === '/api/info') {
      const ix = index;
      const c = ix?.counts(0);
      return sendJson(res, 200, {
        file: path.basename(o.file), indexing: !ix, bytes: ix?.bytes ?? null, records: ix?.count ?? null, images: c?.images ?? null,
        instances: c?.instances ?? null, errors: c?.errors ?? null, gt: Boolean(o.gt), pageSize: o.pageSize, filters: FILTERS,
        meta: await firstMeta(), categories: o.gt?.categories ?? {}, profile: ix ? ix.scoreProfile(PROFILE_BINS) : null,
      });
    }
    if (p === '/api/counts') {
      const delta = parseDelta(url);
      return sendJson(res, 200, (index ?? (await ready)).counts(delta));
    }
    if (p === '/api/page') {
      const delta = parseDelta(url);
      const filter = (url.searchParams.get('filter') ?? 'all') as Filter;
      if (!FILTERS.includes(filter)) throw new HttpError(400, `filter must be one of ${FILTERS.join('|')}`);
      if (filter === 'recall' && !o.gt) throw new HttpError(400, "filter 'recall' needs the viewer started with --gt GT.json");
      let page = Math.max(0, Number(url.searchParams.get('page') ?? 0) | 0);
      let ord: Int32Array | null = null;
      let total: number | null;
      if (!index && filter === 'all') {
        // Indexing: the file's head, read from its start, is enough for the first pages.
        const want = (page + 1) * o.pageSize;
        if (head.refs.length < want && !head.complete) {
          const h = await readHead(o.file, want);
          if (h.refs.length > head.refs.length || h.complete) head = h;
        }
        total = head.complete ? head.refs.length : null;
      } else {
        const ix = index ?? (await ready);
        ord = order(ix, filter, delta);
        total = ord ? ord.length : ix.count;
      }
      const known = total ?? head.refs.length;
      const pages = total === null ? null : Math.max(1, Math.ceil(total / o.pageSize));
      page = Math.min(page, Math.max(0, Math.ceil(known / o.pageSize) - 1));
      const ids: number[] = [];
      for (let k = page * o.pageSize; k < Math.min(known, (page + 1) * o.pageSize); k++) ids.push(ord ? ord[k] : k);
      const warming: Promise<unknown>[] = [];
      const items = await busy(() => Promise.all(ids.map((i) => tile(i, delta, warming))));
      sendJson(res, 200, { filter, delta, total, page, pages, items });
      // The next page is the likely next request: warm its thumbnails too, after this page's.
      const next: number[] = [];
      for (let k = (page + 1) * o.pageSize; k < Math.min(known, (page + 2) * o.pageSize); k++) next.push(ord ? ord[k] : k);
      if (next.length > 0) prefetchAfter(warming, next);
      return;
    }
    const m = /^\/(thumb|image)\/([^/]+)$/.exec(p);
    if (m) {
      const i = recordIndex(m[2]);
      // A record past the head waits for the index outside the gate, or the two would wait for each other.
      if (!locateNow(i)) await ready;
      return busy(() => serveImage(res, i, m[1] === 'thumb' ? o.thumbSize : o.imageSize));
    }
    throw new HttpError(404, `nothing at ${p}`);
  };

  const sendStatic = (res: ServerResponse, name: string) => {
    const body = statics.get(name);
    if (!body) throw new HttpError(404, `no static file '${name}'`);
    res.writeHead(200, {
      'Content-Type': MIME[path.extname(name)], 'Content-Length': body.length, 'Cache-Control': 'no-cache',
      'Content-Security-Policy': CSP, 'X-Content-Type-Options': 'nosniff',
    });
    res.end(body);
  };

  return createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const status = e instanceof HttpError ? e.status : 500;
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendJson(res, status, { error: (e as Error).message });
    });
  });
}
