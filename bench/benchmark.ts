// The shape of one benchmark: bench/<name>.ts exports `benchmark`.
// `casl bench NAME` prints its rows as a table; `--json` prints one object
// of its figures (the keys the issue names) instead.

export interface BenchOptions {
  backend?: string;
  quick: boolean;
  log: (line: string) => void;
}

export interface BenchResult {
  /** The figures, under the names the issues ask for. */
  figures: Record<string, number | string | null>;
  /** Human table: header row first. */
  table: (string | number)[][];
  /** Anything worth knowing when reading the figures (machine, setup). */
  notes?: string[];
}

export interface Benchmark {
  name: string;
  summary: string;
  run(opts: BenchOptions): Promise<BenchResult>;
}

export function formatTable(rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : c)));
  const widths = cells[0].map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => '| ' + r.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
  return [line(cells[0]), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...cells.slice(1).map(line)].join('\n');
}

function fmt(x: number): string {
  if (Number.isInteger(x)) return String(x);
  return Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 1 ? x.toFixed(2) : x.toFixed(4);
}
