// `casl view` in Debian's chromium, headless, driven by playwright-core: the
// grid renders with boxes drawn, the δ slider's counts equal what `casl
// filter` reports for the same δ, a traversal attempt gets 403/404 and the
// refused records show as errors. Skipped, with the reason printed, where
// /usr/bin/chromium is absent. CASL_VIEW_SCREENSHOT=FILE keeps the
// screenshot (the README's first comes from it).
import t from 'tap';
import { existsSync } from 'node:fs';
import path from 'node:path';
import http from 'node:http';
import sharp from 'sharp';
import { CHROMIUM, launchChromium, setDelta } from '../src/view/headless.js';
import { colourPixels, expectedCounts, filterCounts, makeViewFixture, shownCounts, startView } from './view-fixture.js';

if (!existsSync(CHROMIUM)) {
  t.comment(`skipping the browser tests: ${CHROMIUM} is absent (apt-get install chromium; .ci/run does it)`);
  t.pass('skipped: no chromium');
} else {
  await run();
}

async function run() {
  const fx = await makeViewFixture(14);
  const server = await startView([fx.jsonl, '--root', fx.root, '--gt', fx.gt]);
  const { page, close } = await launchChromium();
  t.teardown(async () => {
    await close();
    await server.stop();
  });
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  // Console errors include Content-Security-Policy violations. The 403s and
  // 404s the traversal test provokes on purpose are logged as failed loads.
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 40[34]/.test(m.text())) pageErrors.push(m.text());
  });
  const outside: string[] = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(server.url)) outside.push(r.url());
  });

  const good = fx.records.filter((r) => typeof r.file_name === 'string' && !r.file_name.includes('..') && !path.isAbsolute(r.file_name) && r.file_name !== 'escape.png');

  await t.test('the grid renders: a tile per record, thumbnails loaded, errors shown as errors', async (t) => {
    await page.goto(`${server.url}/#delta=0.5`);
    await page.waitForFunction((n) => document.querySelectorAll('.tile[data-loaded]').length === n, good.length, { timeout: 30_000 });
    t.equal(await page.locator('.tile').count(), fx.records.length + fx.nonRecords);
    const errors = await page.locator('.tile.error .message').allTextContents();
    t.equal(errors.length, fx.nonRecords + fx.refused);
    t.match(errors.join('\n'), /'\.\.' segment[\s\S]*absolute[\s\S]*symlink out/);
    const captions = await page.locator('.tile:not(.error)').evaluateAll((els) => els.map((e) => Number((e as HTMLElement).dataset.kept)));
    t.same(captions, good.map((r) => r.instances.filter((i) => i.score > 0.5).length), 'per-tile survivors at δ = 0.5');
  });

  await t.test('the slider: counts equal the δ filter at 0.3, 0.5, 0.7 and tiles redraw', async (t) => {
    for (const delta of [0.3, 0.5, 0.7]) {
      await setDelta(page, delta);
      const shown = await page.evaluate(shownCounts);
      const want = filterCounts(fx.dir, fx.jsonl, delta);
      t.same(shown, want, `δ = ${delta}: page = casl filter`);
      t.same(want, expectedCounts(fx.records, delta), `δ = ${delta}: casl filter = the strict rule`);
      const kept = await page.locator('.tile:not(.error)').evaluateAll((els) => els.map((e) => Number((e as HTMLElement).dataset.kept)));
      t.same(kept, good.map((r) => r.instances.filter((i) => i.score > delta).length), `tiles redrawn at δ = ${delta}`);
    }
    t.ok(expectedCounts(fx.records, 0.3).instancesKept > expectedCounts(fx.records, 0.7).instancesKept, 'the δs differ in what they keep');
  });

  await t.test('a screenshot shows boxes, and they go when δ is above every score', async (t) => {
    await setDelta(page, 0.3);
    const shot = await page.screenshot({ fullPage: false });
    // The first instance's box colour (#ff3b30), which no fixture image contains.
    const red = await colourPixels(shot, [255, 59, 48]);
    t.ok(red > 200, `box pixels on screen at δ = 0.3: ${red}`);
    // The format follows the file's extension (.png, .jpg).
    if (process.env.CASL_VIEW_SCREENSHOT) await sharp(shot).toFile(process.env.CASL_VIEW_SCREENSHOT);
    // Masks (COCO RLE, decoded in the page) fill their instances.
    const painted = () => page.evaluate(() => Array.from(document.querySelectorAll('.tile canvas')).reduce((n, c) => {
      const cv = c as HTMLCanvasElement;
      const d = cv.getContext('2d')!.getImageData(0, 0, cv.width, cv.height).data;
      for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n += 1;
      return n;
    }, 0));
    const withMasks = await painted();
    await page.click('#show-masks');
    const outlines = await painted();
    await page.click('#show-masks');
    // The fixture's masks kept at δ = 0.3 cover about 7,000 display pixels; their outlines are drawn either way.
    t.ok(withMasks - outlines > 3000, `painted pixels with masks ${withMasks}, without ${outlines}`);
    await setDelta(page, 0.99);
    await page.waitForFunction(() => Array.from(document.querySelectorAll('.tile:not(.error)')).every((e) => (e as HTMLElement).dataset.kept === '0'));
    const none = await colourPixels(await page.screenshot({ fullPage: false }), [255, 59, 48]);
    t.ok(none < red / 20, `box pixels at δ = 0.99: ${none}`);
  });

  await t.test('the image view lists every instance with its score', async (t) => {
    await setDelta(page, 0.5);
    const k = good.findIndex((r) => r.instances.length >= 3);
    await page.locator('.tile:not(.error)').nth(k).click();
    await page.waitForSelector('#detail:not([hidden])');
    await page.waitForFunction(() => (document.getElementById('detail-img') as HTMLImageElement).naturalWidth > 0);
    const scores = await page.locator('#detail-table tbody tr td:nth-child(2)').allTextContents();
    t.same(scores, good[k].instances.map((i) => i.score).sort((a, b) => b - a).map((s) => s.toFixed(3)));
    await page.keyboard.press('Escape');
    t.ok(await page.locator('#detail').isHidden());
  });

  await t.test('filters: dropped at this δ, lowest recall', async (t) => {
    await setDelta(page, 0.3);
    await page.selectOption('#filter', 'dropped');
    await page.waitForFunction(() => location.hash.includes('filter=dropped'));
    const n = await page.locator('.tile').count();
    t.equal(n, expectedCounts(fx.records, 0.3).imagesDropped);
    t.ok(await page.locator('.tile').evaluateAll((els) => els.every((e) => (e as HTMLElement).dataset.kept === '0')));
    await page.selectOption('#filter', 'recall');
    await page.waitForFunction(() => location.hash.includes('filter=recall'));
    t.match(await page.locator('.tile .caption').first().textContent(), /recall 0%/, 'the worst image first');
  });

  await t.test('traversal attempts get 403/404; the page fetched nothing from elsewhere', async (t) => {
    for (const p of ['/static/../package.json', '/static/%2e%2e/%2e%2e/etc/passwd', '/thumb/..%2f..%2fsecret.png']) {
      const status = await page.evaluate(async (u) => (await fetch(u)).status, p);
      t.ok(status === 403 || status === 404, `browser fetch ${p} → ${status}`);
    }
    // A browser normalises '..' before sending; a raw client does not.
    for (const p of ['/static/../../package.json', '/../secret.png']) {
      const status = await new Promise<number>((ok, fail) => {
        http.get(server.url + p, (res) => {
          res.resume();
          ok(res.statusCode!);
        }).on('error', fail);
      });
      t.ok(status === 403 || status === 404, `raw ${p} → ${status}`);
    }
    const n = fx.records.length + fx.nonRecords;
    for (const i of [n - 3, n - 2, n - 1]) {
      t.equal(await page.evaluate(async (u) => (await fetch(u)).status, `/thumb/${i}`), 403, `record ${i} names a file outside --root`);
    }
    t.same(outside, [], 'no request left the server');
    t.same(pageErrors, [], 'no script errors, no CSP violations');
  });
}
