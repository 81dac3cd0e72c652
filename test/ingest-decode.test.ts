// The acceptance check for the streaming foundation end to end: a
// directory mixing good and bad images yields one record per good image and
// one error record per bad one, and the run's summary counts both.
import t from 'tap';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import sharp from 'sharp';
import type { ErrorRecord } from '../src/records.js';
import { decodeImages } from '../src/io/decode.js';
import { ingestRecords, listImages } from '../src/io/ingest.js';
import { finishRun, mapOk } from '../src/streams/index.js';

t.test('mixed good and bad images: a record per good one, an error record per bad one, both counted', async (t) => {
  const root = mkdtempSync(path.join(tmpdir(), 'casl-mixed-'));
  mkdirSync(path.join(root, 'img', 'sub'), { recursive: true });
  const good: string[] = [];
  for (let i = 0; i < 6; i++) {
    const name = `img/${i % 2 ? 'sub/' : ''}good_${i}.${i % 3 ? 'jpg' : 'png'}`;
    const img = sharp({ create: { width: 20 + i * 7, height: 30, channels: 3, background: { r: 40 * i, g: 90, b: 200 } } });
    writeFileSync(path.join(root, name), await (name.endsWith('png') ? img.png() : img.jpeg()).toBuffer());
    good.push(name);
  }
  const jpeg = readFileSync(path.join(root, good[1]));
  const bad: Record<string, Buffer> = {
    'img/empty.jpg': Buffer.alloc(0),
    'img/text.jpg': Buffer.from('this is not an image\n'),
    'img/sub/truncated.jpg': jpeg.subarray(0, Math.floor(jpeg.length / 3)),
  };
  for (const [name, bytes] of Object.entries(bad)) writeFileSync(path.join(root, name), bytes);

  const listing = await listImages(['img'], { root, cwd: root });
  t.equal(listing.files.length, 9);
  const { total, records } = ingestRecords(listing);
  const out = path.join(root, 'decoded.jsonl');
  const errors = path.join(root, 'errors.jsonl');
  const stderrLines: string[] = [];
  const stderr = new Writable({ write(c, _e, cb) { stderrLines.push(c.toString()); cb(); } });
  const { summary } = await finishRun(
    records
      .through(decodeImages({ root, concurrency: 2 }))
      // Pixels stay in the process; the JSONL gets the image record with its size.
      .through(mapOk('strip', ({ image_id, file_name, width, height }) => ({ image_id, file_name, width, height }))),
    { command: 'decode-test', out, stderr, errors, total, quiet: true },
  );

  const decoded = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.same(decoded.map((r) => r.file_name), [...good].sort(), 'one record per good image, in ingest order');
  for (const r of decoded) t.equal(r.height, 30);
  const errs = readFileSync(errors, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as ErrorRecord);
  t.same(errs.map((e) => e.file_name).sort(), Object.keys(bad).sort(), 'one error record per bad image');
  for (const e of errs) {
    t.equal(e.stage, 'decode');
    t.ok(e.error.length > 0 && typeof e.image_id === 'number', `${e.file_name}: ${e.error}`);
  }
  t.match(summary, { ok: 6, errors: 3 });
  t.match(stderrLines.join(''), /^decode-test: 6 records, 3 errors \(decode 3\) in /);
});
