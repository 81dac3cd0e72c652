// casl bench streams: what the stream operators cost. JSONL parse and
// serialize of prediction-like records (10 instances with RLE masks each),
// beside the same work done without streams (split + JSON.parse, map +
// JSON.stringify) so the figure to read is the gap, not the absolute rate on
// a shared machine; and the per-record cost of orderedMap against a plain map.
import { Writable } from 'node:stream';
import _ from 'highland';
import type { Benchmark } from './benchmark.js';
import { orderedMap, parseJsonl, serializeJsonl, type OrError, type Stream, writeTo } from '../src/streams/index.js';

const CHUNK = 64 * 1024; // a file read stream's chunk size

function predictionRecord(i: number): object {
  const instances = Array.from({ length: 10 }, (_x, k) => ({
    bbox: [(i * 7 + k * 13) % 200, (i * 3 + k * 5) % 150, 10 + k, 12 + k],
    score: ((i + k) % 97) / 97,
    category_id: 1,
    segmentation: { size: [240, 320], counts: `${'a'.repeat(40)}${i}${'Z'.repeat(120)}${k}` },
  }));
  return { image_id: 1_000_000 + i, file_name: `images/unlabeled/unlabeled_${String(i).padStart(6, '0')}.jpg`, instances };
}

function time(f: () => void): number {
  const t0 = performance.now();
  f();
  return (performance.now() - t0) / 1000;
}

async function timeAsync(f: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await f();
  return (performance.now() - t0) / 1000;
}

/** Best of `rounds`: the round least disturbed by the other work on the machine. */
async function best(rounds: number, f: () => Promise<number>): Promise<number> {
  let t = Infinity;
  for (let r = 0; r < rounds; r++) t = Math.min(t, await f());
  return t;
}

const discard = () => new Writable({ write(_c, _e, cb) { cb(); } });

export const benchmark: Benchmark = {
  name: 'streams',
  summary: 'JSONL parse/serialize and orderedMap through the stream operators, beside the same work without streams',
  async run(opts) {
    const nRecords = opts.quick ? 2_000 : 20_000;
    const nItems = opts.quick ? 20_000 : 200_000;
    const rounds = opts.quick ? 1 : 3;
    const records = Array.from({ length: nRecords }, (_x, i) => predictionRecord(i));
    const text = Buffer.from(records.map((r) => JSON.stringify(r) + '\n').join(''));
    const mb = text.length / 1e6;
    const chunks: Buffer[] = [];
    for (let i = 0; i < text.length; i += CHUNK) chunks.push(text.subarray(i, i + CHUNK));
    opts.log(`${nRecords} records, ${mb.toFixed(1)} MB of JSONL; ${nItems} items through the map stages; best of ${rounds}`);

    const parseS = await best(rounds, () => timeAsync(async () => {
      const out = await _<Buffer | string>(chunks).through(parseJsonl()).collect().toPromise(Promise);
      if (out.length !== nRecords) throw new Error(`bench streams: parsed ${out.length} of ${nRecords} records`);
    }));
    const bareParseS = await best(rounds, async () => time(() => {
      const out = text.toString('utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as unknown);
      if (out.length !== nRecords) throw new Error('bench streams: bare parse lost records');
    }));
    const serializeS = await best(rounds, () => timeAsync(async () => {
      const { written } = await _(records).through(serializeJsonl()).through(writeTo(discard()));
      if (written !== nRecords) throw new Error('bench streams: serialize lost records');
    }));
    const bareSerializeS = await best(rounds, async () => time(() => {
      const w = discard();
      for (const r of records) w.write(JSON.stringify(r) + '\n');
    }));

    // A lazy source, as in a real pipeline: highland's array source splices
    // its buffer once per pull, which would make any async stage look quadratic.
    const items = () => _<OrError<number>>((function* () {
      for (let i = 0; i < nItems; i++) yield i;
    })());
    const count = <T>(s: Stream<T>) => new Promise<void>((resolve, reject) => {
      let n = 0;
      s.each(() => { n++; }).done(() => (n === nItems ? resolve() : reject(new Error(`bench streams: ${n} of ${nItems} items`))));
    });
    const mapS = await best(rounds, () => timeAsync(() => count(items().map((x) => (x as number) + 1))));
    const orderedS = await best(rounds, () => timeAsync(() => count(items().through(orderedMap(4, async (x: number) => x + 1)))));

    const us = (s: number) => (s / nItems) * 1e6;
    const figures = {
      jsonl_parse_mb_per_s: Number((mb / parseS).toFixed(1)),
      jsonl_parse_records_per_s: Math.round(nRecords / parseS),
      jsonl_parse_bare_mb_per_s: Number((mb / bareParseS).toFixed(1)),
      jsonl_serialize_records_per_s: Math.round(nRecords / serializeS),
      jsonl_serialize_bare_records_per_s: Math.round(nRecords / bareSerializeS),
      map_us_per_item: Number(us(mapS).toFixed(3)),
      ordered_map_c4_us_per_item: Number(us(orderedS).toFixed(3)),
    };
    return {
      figures,
      table: [
        ['what', 'through casl streams', 'without streams', 'unit'],
        ['JSONL parse', figures.jsonl_parse_mb_per_s, figures.jsonl_parse_bare_mb_per_s, 'MB/s'],
        ['JSONL parse', figures.jsonl_parse_records_per_s, Math.round(nRecords / bareParseS), 'records/s'],
        ['JSONL serialize', figures.jsonl_serialize_records_per_s, figures.jsonl_serialize_bare_records_per_s, 'records/s'],
        ['orderedMap(4, async) vs highland map', figures.ordered_map_c4_us_per_item, figures.map_us_per_item, 'µs/item'],
      ],
      notes: [
        `${nRecords} prediction records of 10 instances with RLE masks (${(text.length / nRecords).toFixed(0)} bytes a line), fed in ${CHUNK / 1024} KB chunks; best of ${rounds} rounds.`,
        '"without streams": split + JSON.parse of the whole text at once, and JSON.stringify + write per record, with no backpressure.',
      ],
    };
  },
};
