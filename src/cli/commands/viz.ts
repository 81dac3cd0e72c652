// `casl viz`: prediction / pseudo-label records drawn on their images (PNG
// per image), the instances above δ only, so one file of low-δ pseudo labels
// shows what any higher δ would keep.
import { createReadStream, mkdirSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import path from 'node:path';
import type { Command } from '../command.js';
import { UsageError } from '../command.js';
import { drawInstances } from '../../experiment/viz.js';
import type { PredictionRecord } from '../../records.js';

export interface VizOptions {
  root: string;
  out: string;
  delta: number;
  limit: number;
  minSide?: number;
  log?: (line: string) => void;
}

/** Draws the first `limit` image records of `file`; returns the PNGs written and the records that failed. */
export async function vizFile(file: string, o: VizOptions): Promise<{ written: string[]; errors: number }> {
  mkdirSync(o.out, { recursive: true });
  const written: string[] = [];
  let errors = 0;
  let lineNo = 0;
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const line of lines) {
    lineNo += 1;
    if (!line.trim()) continue;
    if (written.length >= o.limit) break;
    let rec: PredictionRecord & { error?: string };
    try {
      rec = JSON.parse(line);
    } catch (e) {
      errors += 1;
      o.log?.(`${file}:${lineNo}: not JSON (${(e as Error).message}); skipped and counted`);
      continue;
    }
    if (rec.error !== undefined || typeof rec.file_name !== 'string') {
      errors += 1;
      o.log?.(`${file}:${lineNo}: ${rec.error !== undefined ? `an error record (${rec.error})` : 'no file_name'}; skipped and counted`);
      continue;
    }
    const kept = (rec.instances ?? []).filter((x) => x.score > o.delta);
    const target = path.join(o.out, `${rec.image_id ?? lineNo}.png`);
    try {
      writeFileSync(target, await drawInstances(path.join(o.root, rec.file_name), kept, { minSide: o.minSide }));
      written.push(target);
    } catch (e) {
      errors += 1;
      o.log?.(`${file}:${lineNo}: ${path.join(o.root, rec.file_name)}: ${(e as Error).message}; skipped and counted`);
    }
  }
  lines.close();
  return { written, errors };
}

export const command: Command = {
  name: 'viz',
  summary: 'draw prediction / pseudo-label records (boxes, masks) above δ on their images, one PNG each',
  usage: 'casl viz PRED.jsonl --root DIR --out DIR [--delta δ] [--limit N]',
  example: 'casl viz runs/pseudo-labels/pseudo.jsonl --root data/fixtures/images/unlabeled --out runs/viz --delta 0.5 --limit 8',
  options: {
    root: { type: 'string', help: 'folder the records\' file_name is relative to' },
    out: { type: 'string', short: 'o', help: 'folder for the PNGs (IMAGE_ID.png)' },
    delta: { type: 'number', help: 'draw the instances scoring strictly above this', default: 0 },
    limit: { type: 'integer', help: 'draw the first N image records', default: 16 },
    'min-side': { type: 'integer', help: 'upscale (nearest neighbour) images whose shorter side is below this', default: 0 },
  },
  async run(opts, positionals, ctx) {
    if (positionals.length !== 1) throw new UsageError(`give one prediction JSONL file (got ${positionals.length}): ${command.usage}`);
    if (!opts.root) throw new UsageError('--root is missing: the folder the records\' file_name is relative to (e.g. data/fixtures/images/unlabeled)');
    if (!opts.out) throw new UsageError('--out is missing: the folder to write the PNGs to');
    const delta = opts.delta as number;
    if (!(delta >= 0 && delta < 1)) throw new UsageError(`--delta must be in [0, 1), got ${delta}`);
    const limit = opts.limit as number;
    if (!(limit > 0)) throw new UsageError(`--limit must be positive, got ${limit}`);
    const r = await vizFile(positionals[0], {
      root: opts.root as string, out: opts.out as string, delta, limit, minSide: opts['min-side'] as number,
      log: (line) => ctx.stderr.write(`casl viz: ${line}\n`),
    });
    ctx.stderr.write(`casl viz: ${r.written.length} images drawn in ${opts.out as string}${r.errors ? `, ${r.errors} records failed` : ''}\n`);
    return r.errors ? 1 : 0;
  },
};
