import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ErrorRecord, ImageRecord } from '../src/records.js';
import { imageIdFor, ingestRecords, inShard, listImages, parseShard } from '../src/io/ingest.js';

const CASL = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'casl.js');

function casl(args: string[], cwd?: string) {
  const r = spawnSync(process.execPath, [CASL, 'ingest', ...args], { encoding: 'utf8', cwd });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const lines = (s: string) => s.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as ImageRecord);

/** A tree of empty "images": ingest never opens them. */
function tree(n: number): string {
  const root = mkdtempSync(path.join(tmpdir(), 'casl-ingest-'));
  for (let i = 0; i < n; i++) {
    const dir = path.join(root, 'images', `d${i % 7}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, `img_${i}.${i % 3 === 0 ? 'png' : 'jpg'}`), '');
  }
  writeFileSync(path.join(root, 'images', 'notes.txt'), 'not an image');
  return root;
}

t.test('image_id is a positive safe integer fixed by the relative path alone', async (t) => {
  // Golden values from Python: (int.from_bytes(sha1(name).digest()[:8], 'big') >> 12) + 1
  t.equal(imageIdFor('a/img1.jpg'), 4102540550393590);
  t.equal(imageIdFor('ü/é.png'), 4348968969749489);
  t.equal(imageIdFor('u\u0308/e\u0301.png'), 4348968969749489, 'NFD names (macOS) give the same id');
  for (const name of ['x.jpg', 'a/b/c.png', '']) {
    const id = imageIdFor(name);
    t.ok(Number.isSafeInteger(id) && id >= 1, `${JSON.stringify(name)} → ${id}`);
  }
});

t.test('--shard i/N parsing', async (t) => {
  t.same(parseShard('2/5'), { index: 2, count: 5 });
  t.throws(() => parseShard('5/5'), /0 <= i < N/);
  t.throws(() => parseShard('1/0'), /0 <= i < N/);
  t.throws(() => parseShard('a/3'), /takes i\/N/);
  t.ok(inShard(12, undefined));
  t.ok(inShard(12, { index: 0, count: 3 }));
  t.notOk(inShard(13, { index: 0, count: 3 }));
});

t.test('listImages: sorted, deduplicated, relative to the root; a directory means its images', async (t) => {
  const root = tree(30);
  const a = await listImages(['images/**/*.jpg', 'images/d1/*'], { root, cwd: root });
  t.equal(a.files.length, 20 + 1, 'the 20 JPEGs plus the one PNG of d1, each once');
  t.same(a.files, [...a.files].sort(), 'sorted');
  t.ok(a.files.every((f) => f.startsWith('images/d')), 'relative to the root, / separated');
  t.same(a.matches, [20, 5]);
  const b = await listImages([path.join(root, 'images')], { root });
  t.equal(b.files.length, 30, 'every image under the directory, not notes.txt');
  await t.rejects(listImages([path.join(root, 'images/**/*.jpg')], { root: path.join(root, 'images', 'd0') }), /outside --root/);
  await t.rejects(listImages(['*.jpg'], { root: path.join(root, 'nope') }), /--root .*nope: not a directory/);
});

t.test('ingestRecords: listing errors first, then one record per file of the shard', async (t) => {
  const listing = { root: '/r', files: ['a.jpg', 'b.jpg', 'c.jpg'], errors: [{ error: 'x', stage: 'ingest', file_name: 'd' }], matches: [3] };
  const { total, records } = ingestRecords(listing);
  t.equal(total, 3);
  const out = await records.collect().toPromise(Promise);
  t.same(out, [listing.errors[0], ...listing.files.map((f) => ({ image_id: imageIdFor(f), file_name: f }))]);
});

t.test('casl ingest: sorted, deterministic, shards partition the set', async (t) => {
  const root = tree(300);
  const args = ['images/**/*.{jpg,png}', '--root', '.', '--quiet'];
  const full = casl(args, root);
  t.equal(full.code, 0, full.stderr);
  t.equal(full.stderr, '', 'quiet and no errors: nothing on stderr');
  const all = lines(full.stdout);
  t.equal(all.length, 300);
  const names = all.map((r) => r.file_name);
  t.same(names, [...names].sort(), 'sorted by file_name');
  for (const r of all) t.equal(r.image_id, imageIdFor(r.file_name));
  t.equal(casl(args, root).stdout, full.stdout, 'a second run gives the same bytes');
  const elsewhere = casl([path.join(root, 'images/**/*.{jpg,png}'), '--root', root, '--quiet']);
  t.equal(elsewhere.stdout, full.stdout, 'same records from another working directory with absolute paths');

  const seen = new Map<string, number>();
  for (let i = 0; i < 3; i++) {
    const shard = casl([...args, '--shard', `${i}/3`], root);
    t.equal(shard.code, 0);
    const recs = lines(shard.stdout);
    t.ok(recs.length > 60 && recs.length < 140, `shard ${i}/3 holds ${recs.length} of 300`);
    const order = recs.map((r) => names.indexOf(r.file_name));
    t.same(order, [...order].sort((x, y) => x - y), `shard ${i} keeps the global order`);
    for (const r of recs) {
      t.equal(r.image_id % 3, i);
      seen.set(r.file_name, (seen.get(r.file_name) ?? 0) + 1);
    }
  }
  t.equal(seen.size, 300, 'the union of the shards is every file');
  t.ok([...seen.values()].every((n) => n === 1), 'no file in two shards');
});

t.test('casl ingest: problems are error records and counted, mistakes are usage errors', async (t) => {
  const root = tree(10);
  // A file where a directory is expected cannot be listed: an error record, the run goes on.
  const r = casl(['images/d0/*.jpg', 'images/notes.txt/*.jpg', '--root', '.'], root);
  t.equal(r.code, 1, 'exit status 1: the output is complete for what could be read, but something was left out');
  t.equal(lines(r.stdout).length, 1);
  t.match(r.stderr, /casl ingest: error in ingest: images\/notes\.txt: cannot list directory: ENOTDIR/);
  t.match(r.stderr, /warning: 'images\/notes\.txt\/\*\.jpg' matches no file/);
  t.match(r.stderr, /ingest: 1 records, 1 error \(ingest 1\)/);

  const errFile = path.join(root, 'errors.jsonl');
  const q = casl(['images/d0/*.jpg', 'images/notes.txt/*.jpg', '--errors', errFile, '--quiet'], root);
  const errs = readFileSync(errFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as ErrorRecord);
  t.match(errs, [{ stage: 'ingest', file_name: 'images/notes.txt' }], '--errors gets the error records as JSONL');
  t.match(q.stderr, /1 error/, 'quiet still prints a summary that has errors');

  t.match(casl(['nothing/*.jpg'], root), { code: 2, stderr: /no files match 'nothing\/\*\.jpg'/ });
  t.match(casl([], root), { code: 2, stderr: /name what to ingest/ });
  t.match(casl(['images/**/*.jpg', '--shard', '3/3'], root), { code: 2, stderr: /--shard 3\/3/ });
});

t.test('casl ingest | head -3 ends cleanly (EPIPE is a normal end)', async (t) => {
  // Enough records to overflow the pipe's buffer, so the write really fails.
  const root = tree(2000);
  const r = spawnSync('bash', ['-c', `set -o pipefail; "${process.execPath}" "${CASL}" ingest 'images/**/*.jpg' | head -3`], {
    cwd: root, encoding: 'utf8',
  });
  t.equal(r.status, 0, r.stderr);
  t.equal(lines(r.stdout).length, 3);
  t.notMatch(r.stderr, /EPIPE|Error|at /, 'no stack trace');
});
