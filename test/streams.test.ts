import t from 'tap';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import _ from 'highland';
import type { ErrorRecord } from '../src/records.js';
import {
  batch, errorSink, finishRun, isErrorRecord, mapOk, orderedMap, parseJsonl, progress, readJsonl, routeErrors, RunSummary,
  serializeJsonl, unbatch, writeTo, type OrError, type Stream,
} from '../src/streams/index.js';

const collect = <T>(s: Stream<T>): Promise<T[]> => s.collect().toPromise(Promise);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tmp = () => mkdtempSync(path.join(tmpdir(), 'casl-streams-'));

/** A writable that takes `ms` per chunk and keeps what it got. */
function slowWritable(ms: number, highWaterMark = 16) {
  const got: string[] = [];
  const w = new Writable({
    highWaterMark,
    write(chunk: Buffer, _enc, cb) {
      got.push(chunk.toString());
      setTimeout(cb, ms);
    },
  });
  return { w, got };
}

/** Parses `text` fed in chunks of `size` bytes (0: one chunk). */
function parse(text: string | Buffer, size = 0, maxLineLength?: number) {
  const buf = Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8');
  const chunks: Buffer[] = [];
  if (size === 0) chunks.push(buf);
  else for (let i = 0; i < buf.length; i += size) chunks.push(buf.subarray(i, i + size));
  return collect(_<Buffer | string>(chunks).through(parseJsonl({ maxLineLength, source: 'in.jsonl' })));
}

t.test('parseJsonl: objects, BOM, CRLF, blank lines, line numbers', async (t) => {
  const text = '\ufeff{"a":1}\r\n\n  \r\n{"b":"é✓"}\n{"c":[1,2]}\r\n';
  for (const size of [0, 1, 2, 3, 7]) {
    t.same(await parse(text, size), [{ a: 1 }, { b: 'é✓' }, { c: [1, 2] }], `chunks of ${size} bytes`);
  }
  t.same(await parse(''), [], 'empty input');
  t.same(await parse('\n\n'), [], 'only blank lines');
});

t.test('parseJsonl: bad lines become error records that flow on', async (t) => {
  const text = '{"a":1}\n{"a":\nnot json\n[1,2]\n42\n"s"\nnull\n{"z":26}\n';
  for (const size of [0, 1, 5]) {
    const out = await parse(text, size);
    t.equal(out.length, 8, 'one output per non-blank line');
    t.same(out[0], { a: 1 });
    t.same(out[7], { z: 26 });
    const errs = out.filter(isErrorRecord) as ErrorRecord[];
    t.same(errs.map((e) => e.line), [2, 3, 4, 5, 6, 7]);
    for (const e of errs) {
      t.equal(e.stage, 'parse');
      t.equal(e.file_name, 'in.jsonl');
    }
    t.match(errs[0].error, /line 2 is not valid JSON/);
    t.match(errs[2].error, /line 4 is an array, not a JSON object/);
    t.match(errs[3].error, /a number, not a JSON object/);
    t.match(errs[5].error, /null, not a JSON object/);
  }
});

t.test('parseJsonl: a truncated last line is reported, not parsed', async (t) => {
  for (const size of [0, 1, 4]) {
    const out = await parse('{"a":1}\n{"image_id": 12}', size);
    t.equal(out.length, 2);
    t.same(out[0], { a: 1 });
    t.ok(isErrorRecord(out[1]));
    t.match(out[1], { line: 2, stage: 'parse', file_name: 'in.jsonl' });
    t.match((out[1] as ErrorRecord).error, /no final newline.*torn write/);
  }
  t.same(await parse('{"a":1}\n  '), [{ a: 1 }], 'trailing whitespace without newline is not a record');
});

t.test('parseJsonl: an over-long line is an error, the next line still parses', async (t) => {
  const long = `{"x":"${'y'.repeat(100)}"}`;
  const text = `{"a":1}\n${long}\n{"b":2}\n${long}`;
  for (const size of [0, 1, 9, 64]) {
    const out = await parse(text, size, 50);
    t.equal(out.length, 4, `chunks of ${size}`);
    t.same(out[0], { a: 1 });
    t.match(out[1], { line: 2, stage: 'parse' });
    t.match((out[1] as ErrorRecord).error, /longer than the maximum of 50 bytes/);
    t.same(out[2], { b: 2 });
    t.match(out[3], { line: 4, stage: 'parse' }, 'over-long and unterminated: reported once');
  }
  t.same(await parse(`${'{"a":"12345"}'}\n`, 0, 13), [{ a: '12345' }], 'exactly the maximum is accepted');
});

t.test('parseJsonl: memory does not grow with an endless line', async (t) => {
  // 256 MB in one line, in fresh 1 MB chunks: buffered, it would hold them all.
  let produced = 0;
  let peak = 0;
  const endless = _<Buffer>((push, next) => {
    peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    if (++produced > 256) push(null, _.nil);
    else {
      push(null, Buffer.alloc(1 << 20, 0x61));
      next();
    }
  });
  const before = process.memoryUsage().arrayBuffers;
  const out = await collect(endless.through(parseJsonl({ maxLineLength: 4096 })));
  t.equal(out.length, 1, 'one error for the whole 256 MB line');
  t.ok(peak - before < 128e6, `the line was not buffered (peak +${Math.round((peak - before) / 1e6)} MB)`);
});

t.test('serializeJsonl and readJsonl round trip through a file', async (t) => {
  const file = path.join(tmp(), 'r.jsonl');
  const recs = [{ image_id: 1, file_name: 'a b.jpg' }, { image_id: 2, file_name: 'ü/c.png', width: 3 }];
  const res = await _(recs).through(serializeJsonl()).through(writeTo(file));
  t.same(res, { written: 2, closedEarly: false });
  t.equal(readFileSync(file, 'utf8'), recs.map((r) => JSON.stringify(r)).join('\n') + '\n');
  t.same(await collect(readJsonl(file)), recs);
  writeFileSync(file, '{"a":1}\n{');
  const out = await collect(readJsonl(file));
  t.match(out[1], { file_name: file, line: 2 });
  t.throws(() => readJsonl(path.join(path.dirname(file), 'missing.jsonl')), /cannot read .*missing\.jsonl: ENOENT/);
  t.throws(() => readJsonl(path.dirname(file)), /is not a file/);
  const terminal = Object.assign(new PassThrough(), { isTTY: true });
  t.throws(() => readJsonl('-', { stdin: terminal }), /stdin, which is a terminal/);
  const piped = new PassThrough();
  piped.end('{"a":1}\n');
  t.same(await collect(readJsonl('-', { stdin: piped })), [{ a: 1 }]);
});

t.test('writeTo: waits for drain, reports a closed pipe as an early end', async (t) => {
  const { w, got } = slowWritable(1, 8);
  const lines = Array.from({ length: 50 }, (_x, i) => `${i}\n`);
  const res = await _(lines).through(writeTo(w));
  t.same(res, { written: 50, closedEarly: false });
  t.same(got, lines, 'everything written, in order, before the promise resolved');

  let pulled = 0;
  const broken = new Writable({
    write(_c, _e, cb) {
      const e = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
      cb(e);
    },
  });
  const src = _<string>((push, next) => {
    pulled++;
    push(null, 'x\n');
    next();
  });
  const r2 = await src.through(writeTo(broken));
  t.equal(r2.closedEarly, true);
  t.ok(pulled < 100, `the endless source stopped (pulled ${pulled})`);

  await t.rejects(_.fromError<string>(new Error('upstream broke')).through(writeTo(slowWritable(0).w)), /upstream broke/);
});

t.test('batch flushes the tail and lets errors through unbatched', async (t) => {
  const e: ErrorRecord = { error: 'bad', stage: 'decode' };
  t.same(await collect(_<OrError<number>>([1, 2, e, 3, 4, 5]).through(batch(2))), [[1, 2], e, [3, 4], [5]]);
  t.same(await collect(_<OrError<number>>([1, 2, 3, 4]).through(batch(2))), [[1, 2], [3, 4]], 'no empty tail');
  t.same(await collect(_<OrError<number>>([]).through(batch(3))), []);
  t.same(await collect(_<OrError<number>>([1, e, 2, 3]).through(batch(3)).through(unbatch())), [e, 1, 2, 3]);
  t.throws(() => batch(0), /positive integer/);
});

t.test('orderedMap keeps order, bounds concurrency, turns rejections into error records', async (t) => {
  let running = 0;
  let maxRunning = 0;
  const f = async (x: { image_id: number; file_name: string }) => {
    running++;
    maxRunning = Math.max(maxRunning, running);
    await sleep((x.image_id * 7) % 5);
    running--;
    if (x.image_id === 13) throw new Error('cannot decode');
    return x.image_id * 10;
  };
  const e: ErrorRecord = { error: 'upstream', stage: 'parse', line: 4 };
  const input: OrError<{ image_id: number; file_name: string }>[] = [];
  for (let i = 0; i < 40; i++) input.push(i === 20 ? e : { image_id: i, file_name: `${i}.jpg` });
  const out = await collect(_(input).through(orderedMap(3, f, { stage: 'decode' })));
  t.equal(out.length, 40);
  t.equal(maxRunning, 3, 'exactly `concurrency` calls at once at the peak');
  for (let i = 0; i < 40; i++) {
    if (i === 20) t.equal(out[i], e, 'upstream error kept its place, untouched');
    else if (i === 13) t.same(out[i], { error: 'cannot decode', stage: 'decode', file_name: '13.jpg', image_id: 13 });
    else t.equal(out[i], i * 10);
  }
  const sync = await collect(_([1, 2]).through(orderedMap(2, (x: number) => {
    if (x === 1) throw new Error('sync throw');
    return Promise.resolve(x);
  })));
  t.same(sync, [{ error: 'sync throw', stage: 'map' }, 2]);
  t.throws(() => orderedMap(0, async (x) => x), /positive integer/);
});

t.test('mapOk applies to good records only and catches throws', async (t) => {
  const e: ErrorRecord = { error: 'x', stage: 'parse' };
  const out = await collect(_<OrError<{ image_id: number; file_name?: string }>>([{ image_id: 1 }, e, { image_id: 2, file_name: 'b.jpg' }])
    .through(mapOk('scale', (r: { image_id: number }) => {
      if (r.image_id === 2) throw new Error('too big');
      return r.image_id * 2;
    })));
  t.same(out, [2, e, { error: 'too big', stage: 'scale', file_name: 'b.jpg', image_id: 2 }]);
  t.equal(out[1], e, 'the same object, untouched');
});

t.test('routeErrors takes errors out to a file or stderr and counts them', async (t) => {
  const file = path.join(tmp(), 'errors.jsonl');
  const summary = new RunSummary('test');
  const e1: ErrorRecord = { error: 'bad jpeg', stage: 'decode', file_name: 'a.jpg' };
  const e2: ErrorRecord = { error: 'bad json', stage: 'parse', line: 3 };
  const sink = errorSink({ file, stderr: process.stderr, command: 'test' });
  const p = progress('test', { quiet: true, summary, stderr: slowWritable(0).w });
  const out = await collect(_<OrError<number>>([1, e1, 2, e2, 3]).through(p.tap).through(routeErrors(sink, summary)));
  await sink.close();
  t.same(out, [1, 2, 3]);
  t.same(readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l)), [e1, e2]);
  t.equal(summary.ok, 3);
  t.equal(summary.errors, 2, 'seen by the tap and by routeErrors, counted once');
  t.same([...summary.errorsByStage], [['decode', 1], ['parse', 1]]);
  t.match(summary.toString(), /^test: 3 records, 2 errors \(decode 1, parse 1\) in /);

  const { w, got } = slowWritable(0);
  const out2 = await collect(_<OrError<number>>([e1, 7, e2]).through(routeErrors(errorSink({ stderr: w, command: 'ingest' }))));
  t.same(out2, [7]);
  t.same(got, ['casl ingest: error in decode: a.jpg: bad jpeg\n', 'casl ingest: error in parse: 3: bad json\n']);
});

t.test('routeErrors waits for a full error sink to drain', async (t) => {
  let pulled = 0;
  let drain: (() => void) | undefined;
  const written: ErrorRecord[] = [];
  const sink = {
    write: (e: ErrorRecord) => { written.push(e); return false; },
    onDrain: (cb: () => void) => { drain = cb; },
    close: async () => {},
  };
  const src = _<OrError<number>>((push, next) => {
    pulled++;
    if (pulled > 3) push(null, _.nil);
    else {
      push(null, { error: `e${pulled}`, stage: 's' });
      next();
    }
  });
  const done = src.through(routeErrors(sink)).collect().toPromise(Promise);
  await sleep(20);
  t.equal(written.length, 1, 'the second error is not taken before the sink drains');
  t.equal(pulled, 1);
  for (let i = 0; i < 3 && drain; i++) {
    const d = drain;
    drain = undefined;
    d();
    await sleep(5);
  }
  t.same(await done, []);
  t.equal(written.length, 3);
});

t.test('finishRun: JSONL out, errors aside, a summary line', async (t) => {
  const dir = tmp();
  const out = path.join(dir, 'out.jsonl');
  const errors = path.join(dir, 'errors.jsonl');
  const stderr = slowWritable(0);
  const e: ErrorRecord = { error: 'broken', stage: 'decode', file_name: 'b.jpg' };
  const { summary, closedEarly } = await finishRun(_<OrError<{ image_id: number }>>([{ image_id: 1 }, e, { image_id: 3 }]), {
    command: 'demo', out, stderr: stderr.w, errors, quiet: true,
  });
  t.equal(closedEarly, false);
  t.equal(readFileSync(out, 'utf8'), '{"image_id":1}\n{"image_id":3}\n');
  t.same(JSON.parse(readFileSync(errors, 'utf8')), e);
  t.match(summary, { ok: 2, errors: 1 });
  t.match(stderr.got, [/^demo: 2 records, 1 error \(decode 1\) in /]);
});

t.test('progress: plain lines off a TTY, a bar on a TTY, nothing with --quiet', async (t) => {
  const slowSource = (n: number) => _<number>((push, next) => {
    if (n-- <= 0) push(null, _.nil);
    else setTimeout(() => { push(null, n); next(); }, 2);
  });
  const plain = slowWritable(0);
  const p1 = progress('ingest', { stderr: plain.w, tty: false, intervalMs: 20, total: 30 });
  await collect(slowSource(30).through(p1.tap));
  const line = p1.done();
  // The writable takes each chunk a timer tick after the one before: let it
  // take everything written so far before reading what it got.
  while (plain.w.writableLength > 0) await new Promise((r) => setTimeout(r, 1));
  t.ok(plain.got.length >= 2, `periodic lines (${plain.got.length})`);
  t.match(plain.got[0], /^ingest: +\d+% +\d+\/30 /);
  t.notMatch(plain.got.join(''), /\r|\x1b/, 'no terminal control off a TTY');
  t.equal(plain.got.at(-1), `${line}\n`, 'the summary closes the output');
  t.match(line, /^ingest: 30 records, 0 errors in/);
  t.equal(p1.done(), line, 'done is idempotent');

  const bar = slowWritable(0);
  const p2 = progress('decode', { stderr: bar.w, tty: true, total: 10 });
  await collect(slowSource(10).through(p2.tap));
  p2.done();
  t.match(bar.got[0], /^\rdecode \[[#-]+\] +\d+% /);

  const listing = slowWritable(0);
  const p5 = progress('listing', { stderr: listing.w, tty: true, unit: 'files' });
  p5.add(3);
  await sleep(5);
  p5.dismiss();
  p5.add();
  t.match(listing.got[0], /^\rlisting  3 files /, 'no total: a count and a rate, in the given unit');
  t.equal(listing.got.at(-1), '\r\x1b[K', 'dismiss clears the line and prints no summary');
  t.equal(p5.summary.ok, 4);

  const quiet = slowWritable(0);
  const p3 = progress('x', { stderr: quiet.w, tty: true, quiet: true });
  await collect(slowSource(5).through(p3.tap));
  p3.done();
  t.same(quiet.got, [], 'quiet and no errors: silent');
  const p4 = progress('x', { stderr: quiet.w, quiet: true });
  await collect(_<OrError<number>>([1, { error: 'e', stage: 's' }]).through(p4.tap));
  p4.done();
  t.match(quiet.got, [/^x: 1 records, 1 error \(s 1\)/], 'quiet still reports errors in the summary');
});

t.test('backpressure: a fast producer into a slow consumer keeps a bounded number in flight', async (t) => {
  // Every stage between the source and the slow writer; the bound follows
  // from the stages' own buffers (orderedMap window, one batch, the
  // writer's highWaterMark), not from the length of the input.
  const N = 400;
  let produced = 0;
  let consumed = 0;
  let maxInFlight = 0;
  const source = _<Buffer>((push, next) => {
    if (produced === N) {
      push(null, _.nil);
      return;
    }
    produced++;
    push(null, Buffer.from(`{"image_id":${produced},"file_name":"${produced}.jpg"}\n`));
    next();
  });
  const sink = new Writable({
    highWaterMark: 64,
    write(chunk: Buffer, _e, cb) {
      consumed += chunk.toString().split('\n').length - 1;
      maxInFlight = Math.max(maxInFlight, produced - consumed);
      setTimeout(cb, 1);
    },
  });
  const res = await source
    .through(parseJsonl<{ image_id: number; file_name: string }>())
    .through(mapOk('touch', (r: { image_id: number; file_name: string }) => ({ ...r, width: 1 })))
    .through(orderedMap(4, async (r) => { await sleep(0); return r; }))
    .through(batch(8))
    .through(unbatch())
    .through(serializeJsonl())
    .through(writeTo(sink));
  t.equal(res.written, N);
  t.equal(consumed, N);
  t.ok(maxInFlight <= 24, `at most 24 records between source and sink (saw ${maxInFlight})`);
  t.ok(maxInFlight >= 2, 'the pipeline did run ahead of the consumer');
});

t.test('backpressure: each operator alone, fast producer, slow consumer', async (t) => {
  // Items pulled from the source but not yet taken by the consumer. Each
  // operator may hold its own buffer (a batch, a window of concurrency),
  // never more.
  let consumed = 0;
  const gapThrough = async (stage: (s: Stream<OrError<{ image_id: number }>>) => Stream<unknown>) => {
    let produced = 0;
    let maxGap = 0;
    consumed = 0;
    const source = _<OrError<{ image_id: number }>>((push, next) => {
      if (produced === 200) {
        push(null, _.nil);
        return;
      }
      produced++;
      push(null, produced % 10 === 0 ? { error: 'bad', stage: 'decode' } : { image_id: produced });
      next();
    });
    await new Promise<void>((resolve) => {
      stage(source).consume((err, x, push, next) => {
        if (_.isNil(x)) {
          push(null, x);
          resolve();
          return;
        }
        setTimeout(() => {
          consumed += Array.isArray(x) ? x.length : 1;
          maxGap = Math.max(maxGap, produced - consumed);
          next();
        }, 1);
      }).resume();
    });
    return { maxGap, produced };
  };
  // Errors taken out of the stream count as consumed once the sink has them.
  const sink = { write: () => { consumed++; return true; }, onDrain: () => {}, close: async () => {} };
  const cases: [string, (s: Stream<OrError<{ image_id: number }>>) => Stream<unknown>, number][] = [
    ['mapOk', mapOk('x', (r: { image_id: number }) => r.image_id), 2],
    ['orderedMap(4)', orderedMap(4, async (r: { image_id: number }) => { await sleep(r.image_id % 3); return r; }), 4 + 2],
    ['batch(8)', batch(8), 8 + 2],
    ['routeErrors', routeErrors(sink), 2 + 1],
    ['progress tap', progress('x', { quiet: true }).tap, 2],
    ['parseJsonl', (s) => s.map((r) => Buffer.from(JSON.stringify(r) + '\n')).through(parseJsonl()), 2],
  ];
  for (const [name, stage, bound] of cases) {
    const { maxGap, produced } = await gapThrough(stage);
    t.equal(produced, 200, `${name}: everything went through`);
    t.ok(maxGap <= bound, `${name}: at most ${bound} items in flight (saw ${maxGap})`);
  }
});
