// casl viz: boxes (and masks) drawn where the record says, only above δ.
import t from 'tap';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { vizFile } from '../src/cli/commands/viz.js';
import { categoryColor, instanceOverlay } from '../src/experiment/viz.js';
import { encodeMask, rleToJson } from '../src/geometry/mask.js';

async function pixels(file: string) {
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { at: (x: number, y: number) => [...data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3)], width: info.width, height: info.height };
}

t.test('boxes are drawn on the image, below-δ instances are not', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'casl-viz-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await sharp({ create: { width: 20, height: 16, channels: 3, background: { r: 0, g: 0, b: 0 } } }).png().toFile(path.join(dir, 'a.png'));
  writeFileSync(path.join(dir, 'p.jsonl'), [
    JSON.stringify({ image_id: 7, file_name: 'a.png', width: 20, height: 16, instances: [
      { bbox: [2, 3, 10, 8], score: 0.9, category_id: 1 },
      { bbox: [14, 1, 4, 4], score: 0.2, category_id: 2 },
    ] }),
    JSON.stringify({ error: 'decode failed', stage: 'decode', file_name: 'b.png' }),
  ].join('\n') + '\n');
  const r = await vizFile(path.join(dir, 'p.jsonl'), { root: dir, out: path.join(dir, 'out'), delta: 0.5, limit: 5 });
  t.equal(r.written.length, 1);
  t.equal(r.errors, 1, 'the error record is counted');
  const p = await pixels(path.join(dir, 'out', '7.png'));
  t.same([p.width, p.height], [20, 16]);
  const c = categoryColor(1);
  t.same(p.at(2, 3), c, 'top-left corner of the box');
  t.same(p.at(11, 10), c, 'bottom-right corner (x + w - 1, y + h - 1)');
  t.same(p.at(6, 3), c, 'top edge');
  t.same(p.at(3, 7), c, 'second pixel of the 2-px left edge');
  t.same(p.at(6, 7), [0, 0, 0], 'inside the box stays the image');
  t.same(p.at(12, 7), [0, 0, 0], 'right of the box');
  t.same(p.at(15, 2), [0, 0, 0], 'the 0.2 instance is under δ = 0.5: not drawn');
});

t.test('a mask is filled translucently, in the RLE\'s column-major order', async (t) => {
  const w = 6;
  const h = 4;
  const m = new Uint8Array(w * h);
  m[5 * h + 0] = 1; // x = 5, y = 0
  const ov = instanceOverlay([{ bbox: [0, 0, 0, 0], score: 1, category_id: 3, segmentation: rleToJson(encodeMask(m, h, w)) }], w, h);
  const alpha = (x: number, y: number) => ov[(y * w + x) * 4 + 3];
  t.ok(alpha(5, 0) > 0 && alpha(5, 0) < 255, 'mask pixel, translucent');
  t.equal(alpha(0, 1), 0, 'the transposed pixel is not');
});
