import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from '../command.js';
import { UsageError } from '../command.js';
import { type Benchmark, formatTable } from '../../../bench/benchmark.js';

// Compiled benchmarks sit in dist/bench beside dist/src.
const BENCH_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bench');

function benchNames(): string[] {
  const ext = path.extname(fileURLToPath(import.meta.url));
  return readdirSync(BENCH_DIR)
    .filter((f) => f.endsWith(ext) && !f.endsWith('.d.ts') && f !== `benchmark${ext}`)
    .map((f) => f.slice(0, -ext.length))
    .sort();
}

async function load(name: string): Promise<Benchmark> {
  const ext = path.extname(fileURLToPath(import.meta.url));
  const mod = (await import(path.join(BENCH_DIR, `${name}${ext}`))) as { benchmark: Benchmark };
  return mod.benchmark;
}

export const command: Command = {
  name: 'bench',
  summary: 'run a benchmark and print its figures (a table, or one JSON object with --json)',
  usage: 'casl bench <name|all> [--json] [--backend B] [--quick]',
  example: 'casl bench decode --json',
  options: {
    json: { type: 'boolean', help: 'print one JSON object of figures instead of a table', default: false },
    backend: { type: 'string', help: 'tensor backend for model benchmarks (auto|tfjs-node-gpu|tfjs-node|wasm|cpu)' },
    quick: { type: 'boolean', help: 'fewer iterations: a smoke run, not a measurement', default: false },
  },
  async run(opts, positionals, ctx) {
    const names = benchNames();
    const want = positionals[0];
    if (!want) throw new UsageError(`name a benchmark: ${[...names, 'all'].join(', ')}`);
    const chosen = want === 'all' ? names : [want];
    for (const n of chosen) if (!names.includes(n)) throw new UsageError(`no benchmark '${n}' (have: ${names.join(', ')})`);
    const all: Record<string, unknown> = {};
    for (const n of chosen) {
      const b = await load(n);
      const result = await b.run({
        backend: opts.backend as string | undefined,
        quick: opts.quick as boolean,
        log: (line) => ctx.stderr.write(`[bench ${n}] ${line}\n`),
      });
      if (opts.json) {
        if (chosen.length === 1) ctx.stdout.write(JSON.stringify(result.figures) + '\n');
        else all[n] = result.figures;
      } else {
        ctx.stdout.write(`\n## casl bench ${n}: ${b.summary}\n\n${formatTable(result.table)}\n`);
        for (const note of result.notes ?? []) ctx.stdout.write(`${note}\n`);
      }
    }
    if (opts.json && chosen.length > 1) ctx.stdout.write(JSON.stringify(all) + '\n');
    return 0;
  },
};
