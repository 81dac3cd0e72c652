// casl view over a 100,000-record JSONL: how long the index takes, how long
// the first page takes to render (in headless chromium when it is present,
// else over HTTP: the page's JSON and all its thumbnails), what the δ counts
// and a page cost, and the server's peak RSS while paging through the file.
// The server is `casl view` in a child process, so its RSS is its own
// (VmHWM from /proc: the peak, not a sample).
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import sharp from 'sharp';
import type { Benchmark } from './benchmark.js';
import { PROJECT_ROOT } from '../src/cli/options.js';
import { CHROMIUM, gridDrawn, launchChromium } from '../src/view/headless.js';
import { encodeMask, rleToJson } from '../src/geometry/mask.js';
import { Rng } from '../src/augment/rng.js';
import type { Instance } from '../src/records.js';

const W = 320;
const H = 240;

function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

/** `records` prediction records over `images` distinct JPEGs: 0–20 instances each, the best one with a mask. */
async function makeData(dir: string, records: number, images: number): Promise<{ jsonl: string; root: string; instances: number }> {
  const root = path.join(dir, 'images');
  mkdirSync(root);
  const r = rng(11);
  for (let k = 0; k < images; k++) {
    const composites = Array.from({ length: 3 }, () => ({
      input: { create: { width: 30 + Math.floor(r() * 80), height: 30 + Math.floor(r() * 80), channels: 3 as const, background: { r: Math.floor(r() * 255), g: Math.floor(r() * 255), b: 120 } } },
      left: Math.floor(r() * 200), top: Math.floor(r() * 120),
    }));
    await sharp({ create: { width: W, height: H, channels: 3, background: '#404850' } }).composite(composites).jpeg().toFile(path.join(root, `img-${k}.jpg`));
  }
  const jsonl = path.join(dir, 'pred.jsonl');
  const out = createWriteStream(jsonl);
  const masks = Array.from({ length: 16 }, (_, m) => {
    const mask = new Uint8Array(W * H);
    const x0 = 10 * m;
    for (let y = 20; y < 20 + 40 + 5 * m; y++) for (let x = x0; x < x0 + 60; x++) mask[y * W + x] = 1;
    return { bbox: [x0, 20, 60, 40 + 5 * m] as [number, number, number, number], rle: rleToJson(encodeMask(mask, H, W)) };
  });
  let instances = 0;
  for (let i = 0; i < records; i++) {
    const n = Math.floor(r() * 21);
    const inst: Instance[] = [];
    for (let j = 0; j < n; j++) {
      const score = Math.round(r() * 1e4) / 1e4;
      if (j === 0) {
        const m = masks[i % masks.length];
        inst.push({ bbox: m.bbox, score, category_id: 1, segmentation: m.rle });
      } else {
        const w = 10 + r() * 100;
        const h = 10 + r() * 100;
        inst.push({ bbox: [r() * (W - w), r() * (H - h), w, h].map((v) => Math.round(v * 100) / 100) as Instance['bbox'], score, category_id: 1 });
      }
    }
    instances += n;
    const line = JSON.stringify({ image_id: i, file_name: `img-${i % images}.jpg`, width: W, height: H, instances: inst, meta: { model: 'bench', delta: 0.05 } }) + '\n';
    if (!out.write(line)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return { jsonl, root, instances };
}

function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export const benchmark: Benchmark = {
  name: 'view',
  summary: 'casl view on a 100,000-record JSONL: index time, first page, δ counts, paging, server peak RSS',
  async run(opts) {
    const records = opts.quick ? 10_000 : 100_000;
    const distinct = opts.quick ? 200 : 2000;
    const dir = mkdtempSync(path.join(tmpdir(), 'casl-bench-view-'));
    try {
      opts.log(`writing ${records} records over ${distinct} images`);
      const data = await makeData(dir, records, distinct);
      const mb = statSync(data.jsonl).size / 2 ** 20;

      // The browser is up before the viewer starts, as a user's is.
      const browser = existsSync(CHROMIUM) ? await launchChromium() : null;
      const t0 = performance.now();
      const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin/casl.js'), 'view', data.jsonl, '--root', data.root, '--port', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      const said = (re: RegExp) => new Promise<RegExpExecArray>((resolve, reject) => {
        const look = () => {
          const m = re.exec(err);
          if (m) {
            child.stderr!.off('data', look);
            resolve(m);
          }
        };
        child.stderr!.on('data', look);
        child.once('exit', (code) => reject(new Error(`casl view exited ${code}: ${err}`)));
        look();
      });
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      const pid = child.pid!;

      try {
        const url = (await said(/serving on (http:\/\/\S+?)\/?\s/))[1];
        const readyS = (performance.now() - t0) / 1000;
        const get = async (p: string) => {
          const res = await fetch(url + p);
          if (!res.ok) throw new Error(`${p}: ${res.status}`);
          return res;
        };
        const getJson = async (p: string) => (await get(p)).json();

        // First page in the browser, timed from the command's start: the
        // index is still being built then, the head of the file is served.
        let firstPageS: number | null = null;
        let firstPageNavS: number | null = null;
        const browserPages = opts.quick ? 1 : 8;
        if (browser) {
          const s = performance.now();
          await browser.page.goto(`${url}/#delta=0.5`);
          await gridDrawn(browser.page);
          firstPageS = (performance.now() - t0) / 1000;
          firstPageNavS = (performance.now() - s) / 1000;
          opts.log(`first page rendered in chromium ${firstPageS.toFixed(3)} s after casl view started (${firstPageNavS.toFixed(3)} s after navigating)`);
        }
        const indexS = Number((await said(/indexed .* in ([\d.]+) s/))[1]);
        const rssAfterIndex = rssMb(pid);
        opts.log(`indexed ${mb.toFixed(0)} MB in ${indexS} s; server up after ${readyS.toFixed(2)} s`);
        if (browser) {
          // Page on in the browser too: next, next, ... each fully drawn.
          for (let k = 0; k < browserPages; k++) {
            await browser.page.click('#next');
            await browser.page.waitForFunction((p) => location.hash.includes(`page=${p}`), k + 1, { polling: 10 });
            await gridDrawn(browser.page);
          }
        }

        const info = await getJson('/api/info');
        const pageSize = info.pageSize as number;
        const pages = Math.ceil(records / pageSize);
        // An uncached page over HTTP: its JSON, then its thumbnails six at a time like a browser.
        const httpPage = async (p: number, delta: number, filter = 'all') => {
          const s = performance.now();
          const body = await getJson(`/api/page?delta=${delta}&filter=${filter}&page=${p}`);
          const jsonMs = performance.now() - s;
          const thumbs: string[] = body.items.filter((x: { thumb?: string }) => x.thumb).map((x: { thumb: string }) => x.thumb);
          for (let k = 0; k < thumbs.length; k += 6) await Promise.all(thumbs.slice(k, k + 6).map(async (u) => (await get(u)).arrayBuffer()));
          return { jsonMs, totalMs: performance.now() - s };
        };
        // A page whose images neither the browser's pages nor their prefetch touched.
        const coldPage = Math.ceil(distinct / 2 / pageSize);
        if (coldPage * pageSize < (browserPages + 2) * pageSize) throw new Error('bench: the cold page overlaps the pages the browser saw');
        const cold = await httpPage(coldPage, 0.5);

        const countMs: number[] = [];
        for (let k = 0; k <= 20; k++) {
          const s = performance.now();
          const c = await getJson(`/api/counts?delta=${(k / 20).toFixed(2)}`);
          countMs.push(performance.now() - s);
          if (c.images !== records) throw new Error(`counts: ${c.images} images, expected ${records}`);
        }

        // Paging through: random pages across the whole file, with their thumbnails.
        const r = rng(5);
        const jsonMs: number[] = [];
        const nPages = opts.quick ? 20 : 120;
        for (let k = 0; k < nPages; k++) jsonMs.push((await httpPage(Math.floor(r() * pages), 0.5)).jsonMs);
        // The δ-dependent orders: each new δ sorts the whole index once.
        const orderMs: number[] = [];
        for (const [filter, delta] of [['most', 0.3], ['dropped', 0.5], ['most', 0.7], ['dropped', 0.9]] as const) {
          const s = performance.now();
          await getJson(`/api/page?delta=${delta}&filter=${filter}&page=0`);
          orderMs.push(performance.now() - s);
        }
        const peak = peakRssMb(pid);
        const rssEnd = rssMb(pid);
        const figures = {
          records,
          instances: data.instances,
          jsonl_mb: Number(mb.toFixed(1)),
          index_s: indexS,
          server_ready_s: Number(readyS.toFixed(3)),
          first_page_s: firstPageS === null ? null : Number(firstPageS.toFixed(3)),
          first_page_after_navigation_s: firstPageNavS === null ? null : Number(firstPageNavS.toFixed(3)),
          first_page_http_s: Number((cold.totalMs / 1000).toFixed(3)),
          page_json_ms_median: Number(median(jsonMs).toFixed(1)),
          counts_ms_median: Number(median(countMs).toFixed(1)),
          filter_order_ms_max: Number(Math.max(...orderMs).toFixed(1)),
          rss_after_index_mb: Number(rssAfterIndex.toFixed(0)),
          rss_end_mb: Number(rssEnd.toFixed(0)),
          peak_rss_mb: Number(peak.toFixed(0)),
        };
        return {
          figures,
          table: [
            ['figure', 'value'],
            ['records / instances', `${records} / ${data.instances}`],
            ['JSONL size', `${figures.jsonl_mb} MB`],
            ['index (one streaming pass, while serving)', `${figures.index_s} s`],
            ['server listening, after the command started', `${figures.server_ready_s} s`],
            ['first page rendered in chromium (48 tiles, thumbnails drawn), after the command started', firstPageS === null ? 'no chromium' : `${figures.first_page_s} s`],
            ['  of which after navigating', firstPageNavS === null ? 'no chromium' : `${figures.first_page_after_navigation_s} s`],
            ['first page over HTTP (JSON + 48 thumbnails)', `${figures.first_page_http_s} s`],
            ['page JSON, median of random pages', `${figures.page_json_ms_median} ms`],
            ['counts at a new δ, median', `${figures.counts_ms_median} ms`],
            ['"most"/"dropped" order at a new δ, worst', `${figures.filter_order_ms_max} ms`],
            ['server RSS after index / at end / peak', `${figures.rss_after_index_mb} / ${figures.rss_end_mb} / ${figures.peak_rss_mb} MB`],
          ],
          notes: [
            `${distinct} distinct ${W}×${H} JPEGs behind the ${records} records (record i shows image i mod ${distinct}); the first page and the HTTP page are cold (no thumbnail rendered before); ${nPages} random pages paged through with their thumbnails, some LRU hits.`,
          ],
        };
      } finally {
        await browser?.close();
        if (child.exitCode === null) {
          child.kill('SIGTERM');
          await once(child, 'exit');
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
