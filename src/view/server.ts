// The viewer's HTTP server (node:http): the static page, a JSON API over the
// JSONL index, and images rendered by sharp. Every image goes through
// resolveUnderRoot, and every static file is looked up by exact name in a
// list made at start, so no request names a path on disk.
//
//   GET /                      the page (src/view/static/index.html)
//   GET /static/NAME           its scripts and styles
//   GET /api/info              file, sizes, whether --gt was given, the score histogram
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
import { invalidReason, type JsonlIndex, Kind } from './jsonl-index.js';
import { resolveUnderRoot } from './safe-path.js';
import { ImageServer } from './thumbnails.js';

export const STATIC_DIR = path.join(PROJECT_ROOT, 'src', 'view', 'static');

/** Bins of the score histogram drawn under the slider (δ steps of 0.01). */
const PROFILE_BINS = 100;

export const FILTERS = ['all', 'dropped', 'most', 'recall', 'errors'] as const;
export type Filter = (typeof FILTERS)[number];

export interface ViewOptions {
  index: JsonlIndex;
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

  /** Record indices in filter F's order at δ; cached, since paging asks again and again. */
  const order = (filter: Filter, delta: number): Int32Array | null => {
    const ix = o.index;
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
    const i = Number(raw);
    if (!/^\d+$/.test(raw) || i >= o.index.count) throw new HttpError(404, `no record ${raw} (the file has ${o.index.count})`);
    return i;
  };

  // A page's thumbnails start rendering while its JSON is on the way, so the
  // browser's requests for them find them done or in progress; errors show
  // up when the browser asks.
  const warm = (file: string): Promise<unknown> => images.render(file, o.thumbSize).catch(() => undefined);

  /** Record i parsed back, as a tile: an error tile when it is not a prediction or its file is refused. */
  const tile = async (i: number, delta: number, warming?: Promise<unknown>[]): Promise<Tile> => {
    const ix = o.index;
    const base: Tile = { index: i, line: ix.lines[i] };
    const text = await ix.readLine(o.jsonl, i);
    let rec: unknown;
    try {
      rec = JSON.parse(text);
    } catch (e) {
      return { ...base, error: `line ${ix.lines[i]}: not JSON (${(e as Error).message})` };
    }
    if (ix.kinds[i] === Kind.ErrorRecord) {
      const r = rec as { error: string; stage: string; file_name?: string };
      return { ...base, file_name: r.file_name, error: `error record from stage '${r.stage}': ${r.error}` };
    }
    const why = invalidReason(rec);
    if (why) return { ...base, error: `line ${ix.lines[i]}: not a prediction record: ${why}` };
    const p = rec as PredictionRecord;
    const t: Tile = {
      ...base,
      image_id: p.image_id,
      file_name: p.file_name,
      width: p.width,
      height: p.height,
      instances: p.instances,
      kept: ix.keptAt(i, delta),
    };
    if (ix.gtCount(i) > 0) t.gtMatch = Array.from(ix.gtMatch.subarray(ix.gtStart[i], ix.gtStart[i + 1]), (s) => (s === -Infinity ? null : s));
    const gtIm = o.gt?.lookup(p);
    if (gtIm) t.gt = gtIm.boxes;
    if (typeof p.file_name !== 'string') return { ...t, error: `line ${ix.lines[i]}: the record has no 'file_name', so no image to show` };
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
  const firstMeta = async (): Promise<unknown> => {
    for (let i = 0; i < Math.min(o.index.count, 100); i++) {
      if (o.index.kinds[i] === Kind.Prediction) return (JSON.parse(await o.index.readLine(o.jsonl, i)) as PredictionRecord).meta ?? null;
    }
    return null;
  };

  const prefetchAfter = (warming: Promise<unknown>[], next: number[]) => {
    void Promise.all(warming).then(async () => {
      for (const i of next) {
        if (o.index.kinds[i] !== Kind.Prediction) continue;
        if (o.index.refused[i]) continue;
        const rec = JSON.parse(await o.index.readLine(o.jsonl, i)) as PredictionRecord;
        const file = await resolveUnderRoot(o.root, rec.file_name);
        if (file.ok) warm(file.path);
      }
    }).catch(() => undefined);
  };

  const sendJson = (res: ServerResponse, status: number, body: unknown) => {
    const data = Buffer.from(JSON.stringify(body));
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': data.length, 'Cache-Control': 'no-store' });
    res.end(data);
  };

  const serveImage = async (res: ServerResponse, i: number, maxSide: number) => {
    if (o.index.kinds[i] !== Kind.Prediction) throw new HttpError(404, `record ${i} is not a prediction record`);
    const rec = JSON.parse(await o.index.readLine(o.jsonl, i)) as PredictionRecord;
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
      const c = o.index.counts(0);
      return sendJson(res, 200, {
        file: path.basename(o.index.file), bytes: o.index.bytes, records: o.index.count, images: c.images,
        instances: c.instances, errors: c.errors, gt: Boolean(o.gt), pageSize: o.pageSize, filters: FILTERS, meta: await firstMeta(),
        categories: o.gt?.categories ?? {}, profile: o.index.scoreProfile(PROFILE_BINS),
      });
    }
    if (p === '/api/counts') return sendJson(res, 200, o.index.counts(parseDelta(url)));
    if (p === '/api/page') {
      const delta = parseDelta(url);
      const filter = (url.searchParams.get('filter') ?? 'all') as Filter;
      if (!FILTERS.includes(filter)) throw new HttpError(400, `filter must be one of ${FILTERS.join('|')}`);
      if (filter === 'recall' && !o.gt) throw new HttpError(400, "filter 'recall' needs the viewer started with --gt GT.json");
      const ord = order(filter, delta);
      const total = ord ? ord.length : o.index.count;
      const pages = Math.max(1, Math.ceil(total / o.pageSize));
      const page = Math.min(Math.max(0, Number(url.searchParams.get('page') ?? 0) | 0), pages - 1);
      const ids: number[] = [];
      for (let k = page * o.pageSize; k < Math.min(total, (page + 1) * o.pageSize); k++) ids.push(ord ? ord[k] : k);
      const warming: Promise<unknown>[] = [];
      const items = await Promise.all(ids.map((i) => tile(i, delta, warming)));
      sendJson(res, 200, { filter, delta, total, page, pages, items });
      // The next page is the likely next request: warm its thumbnails too, after this page's.
      if (page + 1 < pages) {
        const next: number[] = [];
        for (let k = (page + 1) * o.pageSize; k < Math.min(total, (page + 2) * o.pageSize); k++) next.push(ord ? ord[k] : k);
        prefetchAfter(warming, next);
      }
      return;
    }
    const m = /^\/(thumb|image)\/([^/]+)$/.exec(p);
    if (m) return serveImage(res, recordIndex(m[2]), m[1] === 'thumb' ? o.thumbSize : o.imageSize);
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
