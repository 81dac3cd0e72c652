// casl bench fixtures: how fast the scenes generator is, to back the claim
// that `make fixtures` (3600 images) takes under two minutes. It makes N
// unlabeled images with 1 and with 4 encodes in flight (rounds interleaved,
// best round kept, so load from elsewhere hits both alike), and times the
// JavaScript part alone (scene, rendering, annotations) to show where the
// time goes. CPU time (all threads) is reported beside wall time: on a
// shared machine it is the steadier figure.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Benchmark } from './benchmark.js';
import { annotateScene } from '../src/fixtures/annotate.js';
import { generateFixtures, imageSeed } from '../src/fixtures/generate.js';
import { makeScene, renderScene } from '../src/fixtures/scene.js';

const FULL_SET = 300 + 3000 + 300;

interface Timing {
  wall: number;
  cpu: number;
}

async function measure(f: () => Promise<void> | void): Promise<Timing> {
  const c0 = process.cpuUsage(), t0 = performance.now();
  await f();
  const c = process.cpuUsage(c0);
  return { wall: (performance.now() - t0) / 1000, cpu: (c.user + c.system) / 1e6 };
}

async function generate(n: number, concurrency: number): Promise<Timing> {
  const out = mkdtempSync(path.join(tmpdir(), 'casl-bench-fixtures-'));
  try {
    return await measure(() => generateFixtures({
      out, seed: 1, labeled: 0, unlabeled: n, val: 0, entities: true, jpegQuality: 90, concurrency,
    }).then(() => undefined));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

function best(ts: Timing[]): Timing {
  return ts.reduce((a, b) => (b.wall < a.wall ? b : a));
}

export const benchmark: Benchmark = {
  name: 'fixtures',
  summary: 'scenes generator throughput (images/s, CPU per image) and the projected time of the default 3600-image set',
  async run(opts) {
    const n = opts.quick ? 60 : 400;
    const rounds = opts.quick ? 1 : 2;
    const c1: Timing[] = [], c4: Timing[] = [], js: Timing[] = [];
    for (let r = 0; r < rounds; r++) {
      opts.log(`round ${r + 1}/${rounds}: ${n} images at concurrency 1, 4, and the JavaScript part alone`);
      c1.push(await generate(n, 1));
      c4.push(await generate(n, 4));
      js.push(await measure(() => {
        for (let i = 0; i < n; i++) {
          const scene = makeScene(imageSeed(1, 'unlabeled', i));
          renderScene(scene);
          annotateScene(scene);
        }
      }));
    }
    const b1 = best(c1), b4 = best(c4), bj = best(js);
    const ips1 = n / b1.wall, ips4 = n / b4.wall;
    const cpuMs = (1000 * b4.cpu) / n;
    return {
      figures: {
        fixtures_images_per_s_c1: ips1,
        fixtures_images_per_s_c4: ips4,
        fixtures_cpu_ms_per_image: cpuMs,
        fixtures_js_ms_per_image: (1000 * bj.cpu) / n,
        fixtures_full_set_s_estimate: FULL_SET / Math.max(ips1, ips4),
        fixtures_full_set_cpu_s_estimate: (FULL_SET * cpuMs) / 1000,
      },
      table: [
        ['what', 'images/s', 'CPU ms/image', 'default set (3600), s'],
        ['generate, 1 encode in flight', ips1, (1000 * b1.cpu) / n, FULL_SET / ips1],
        ['generate, 4 encodes in flight', ips4, cpuMs, FULL_SET / ips4],
        ['scene + render + annotations only (no encode, no files)', n / bj.wall, (1000 * bj.cpu) / n, FULL_SET / (n / bj.wall)],
      ],
      notes: [`${n} images a run, best of ${rounds} rounds; CPU time counts every thread (libvips encodes in its own).`],
    };
  },
};
