import t from 'tap';
import { type BinaryMask, GeometricTransform, type RgbImage } from '../src/augment/geometric.js';
import { applyColorOp } from '../src/augment/photometric.js';
import { AUGMENT_DEFAULTS, POLICIES, drawTransform } from '../src/augment/policy.js';
import { AugmentTransform } from '../src/augment/transform.js';
import { Rng, deriveSeed } from '../src/augment/rng.js';

function noiseImage(width: number, height: number, seed: number): RgbImage {
  const rng = new Rng(seed);
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(rng.next() * 256);
  return { data, width, height };
}

function rectMask(width: number, height: number, x1: number, y1: number, x2: number, y2: number): BinaryMask {
  const data = new Uint8Array(width * height);
  for (let y = y1; y < y2; y++) for (let x = x1; x < x2; x++) data[y * width + x] = 1;
  return { data, width, height };
}

t.test('a box through any drawn transform and its inverse comes back within a pixel', async (t) => {
  const rng = new Rng(7);
  let checked = 0;
  for (let trial = 0; trial < 300; trial++) {
    const W = rng.int(40, 320);
    const H = rng.int(40, 320);
    const policy = POLICIES[trial % 3];
    const tf = drawTransform(policy, new Rng(deriveSeed(3, trial)), W, H, 128);
    const x1 = rng.uniform(0, W - 10);
    const y1 = rng.uniform(0, H - 10);
    const box = [x1, y1, rng.uniform(x1 + 5, W), rng.uniform(y1 + 5, H)];
    const mapped = tf.geometric.mapBox(box);
    const back = tf.inverse().mapBox(mapped);
    for (let k = 0; k < 4; k++) t.ok(Math.abs(back[k] - box[k]) < 1e-6, `trial ${trial} coord ${k}`);
    // Clipping loses what left the view, but whatever stayed maps back inside the original box.
    const { boxes } = tf.applyBoxes([box], 0);
    if (boxes.length === 1) {
      const b = tf.inverse().mapBox(boxes[0]);
      t.ok(b[0] >= box[0] - 1e-6 && b[1] >= box[1] - 1e-6 && b[2] <= box[2] + 1e-6 && b[3] <= box[3] + 1e-6);
      checked++;
    }
  }
  t.ok(checked > 200, `most boxes stay on the view (${checked})`);
});

t.test('composition equals applying one after the other; letterbox is the io convention', async (t) => {
  const a = GeometricTransform.letterbox(300, 200, 128);
  t.same(a.affine, { sx: 128 / 300, tx: 0, sy: 128 / 300, ty: 0 });
  t.same(a.contentRect(), [0, 0, 128, Math.ceil((200 * 128) / 300)]);
  const b = GeometricTransform.hflip(128, 128);
  const ab = a.then(b);
  const box = [30, 40, 100, 150];
  t.same(ab.mapBox(box).map((v) => +v.toFixed(9)), b.mapBox(a.mapBox(box)).map((v) => +v.toFixed(9)));
  t.throws(() => b.then(GeometricTransform.identity(10, 10)), /does not feed/);
});

t.test('masks: flip and scale', async (t) => {
  const m = rectMask(8, 6, 1, 2, 3, 5);
  const flipped = GeometricTransform.hflip(8, 6).applyMask(m);
  t.same(Array.from(flipped.data), Array.from(rectMask(8, 6, 5, 2, 7, 5).data), 'hflip moves columns 1–2 to 5–6');
  const twice = GeometricTransform.hflip(8, 6).then(GeometricTransform.hflip(8, 6));
  t.same(twice.affine, { sx: 1, tx: 0, sy: 1, ty: 0 });
  const up = GeometricTransform.resize(8, 6, 16, 12).applyMask(m);
  t.same(Array.from(up.data), Array.from(rectMask(16, 12, 2, 4, 6, 10).data), 'upscale ×2 doubles the rectangle exactly');
  const down = GeometricTransform.resize(16, 12, 8, 6).applyMask(up);
  t.same(Array.from(down.data), Array.from(m.data), 'and down again gives it back');
  // A mask and its box move together through a drawn strong view.
  const W = 200;
  const H = 150;
  const mask = rectMask(W, H, 40, 30, 120, 110);
  const tf = drawTransform('strong', new Rng(11), W, H, 128);
  const out = tf.applyInstances({ boxes: [[40, 30, 120, 110]], masks: [mask] });
  t.equal(out.masks!.length, 1);
  const mv = out.masks![0];
  let minX = Infinity, minY = Infinity, maxX = -1, maxY = -1;
  for (let y = 0; y < mv.height; y++) for (let x = 0; x < mv.width; x++) if (mv.data[y * mv.width + x]) {
    minX = Math.min(minX, x); minY = Math.min(minY, y); maxX = Math.max(maxX, x + 1); maxY = Math.max(maxY, y + 1);
  }
  const b = out.boxes[0];
  t.ok(Math.abs(minX - b[0]) <= 1 && Math.abs(minY - b[1]) <= 1 && Math.abs(maxX - b[2]) <= 1 && Math.abs(maxY - b[3]) <= 1, 'mask extent = box within a pixel');
  // Mapped back to the original, the mask is the original within a pixel's border.
  const back = tf.inverse().applyMask(mv);
  let diff = 0;
  for (let i = 0; i < back.data.length; i++) diff += back.data[i] !== mask.data[i] ? 1 : 0;
  t.ok(diff <= 2 * (80 + 80) * 2, `inverse mask differs only on the border (${diff} px)`);
});

t.test('images: flip mirrors, identity copies, downscale averages, padding stays zero', async (t) => {
  const img = noiseImage(5, 3, 1);
  const f = GeometricTransform.hflip(5, 3).applyImage(img);
  for (let y = 0; y < 3; y++) for (let x = 0; x < 5; x++) for (let c = 0; c < 3; c++) {
    t.equal(f.data[(y * 5 + x) * 3 + c], img.data[(y * 5 + 4 - x) * 3 + c]);
  }
  const flat: RgbImage = { data: new Uint8Array(64 * 32 * 3).fill(200), width: 64, height: 32 };
  const lb = GeometricTransform.letterbox(64, 32, 16).applyImage(flat);
  t.equal(lb.width, 16);
  t.equal(lb.data[0], 200, 'content keeps its value');
  t.equal(lb.data[(7 * 16 + 15) * 3], 200, 'last content row');
  t.equal(lb.data[(8 * 16) * 3], 0, 'padding below is zero');
  // Colour ops touch only the image's footprint.
  const tf = drawTransform('strong', new Rng(5), 64, 32, 32);
  const view = tf.applyImage(flat);
  const [, , x2, y2] = tf.geometric.contentRect();
  for (let y = y2; y < 32; y++) for (let x = 0; x < 32; x++) t.equal(view.data[(y * 32 + x) * 3], 0);
  t.ok(x2 <= 32);
});

t.test('photometric ops', async (t) => {
  const img = noiseImage(16, 16, 2);
  const all: [number, number, number, number] = [0, 0, 16, 16];
  for (const op of [{ op: 'brightness', factor: 1 }, { op: 'contrast', factor: 1 }, { op: 'saturation', factor: 1 }, { op: 'hue', shift: 0 }, { op: 'sharpness', factor: 1 }, { op: 'posterize', bits: 8 }, { op: 'solarize', threshold: 256 }] as const) {
    const c = { ...img, data: img.data.slice() };
    applyColorOp(c, op, all);
    const maxDiff = c.data.reduce((m, v, i) => Math.max(m, Math.abs(v - img.data[i])), 0);
    t.ok(maxDiff <= 1, `${op.op} at its identity magnitude is the identity (max diff ${maxDiff})`);
  }
  const c = { ...img, data: img.data.slice() };
  applyColorOp(c, { op: 'posterize', bits: 2 }, all);
  t.ok(c.data.every((v) => (v & 0x3f) === 0), 'posterize keeps 2 bits');
  const d = { ...img, data: img.data.slice() };
  applyColorOp(d, { op: 'solarize', threshold: 128 }, all);
  t.ok(d.data.every((v, i) => (img.data[i] >= 128 ? v === 255 - img.data[i] : v === img.data[i])));
  const e = { ...img, data: img.data.slice() };
  applyColorOp(e, { op: 'erase', rect: [2, 2, 6, 6], fill: [1, 2, 3] }, all);
  t.same(Array.from(e.data.slice((3 * 16 + 3) * 3, (3 * 16 + 3) * 3 + 3)), [1, 2, 3]);
  t.equal(e.data[0], img.data[0]);
  const dark: RgbImage = { data: new Uint8Array(16 * 16 * 3).map((_, i) => 50 + (i % 40)), width: 16, height: 16 };
  applyColorOp(dark, { op: 'autocontrast' }, all);
  t.equal(Math.min(...dark.data), 0);
  t.equal(Math.max(...dark.data), 255);
  const g = { ...img, data: img.data.slice() };
  applyColorOp(g, { op: 'saturation', factor: 0 }, all);
  for (let p = 0; p < g.data.length; p += 3) t.ok(Math.abs(g.data[p] - g.data[p + 1]) <= 1 && Math.abs(g.data[p] - g.data[p + 2]) <= 1);
});

t.test('seeded: the same seed gives the same views, another seed other views', async (t) => {
  const img = noiseImage(90, 70, 3);
  for (const policy of POLICIES) {
    const a = drawTransform(policy, new Rng(42), 90, 70, 64);
    const b = drawTransform(policy, new Rng(42), 90, 70, 64);
    t.same(a.toJSON(), b.toJSON(), `${policy}: same transform`);
    t.same(Buffer.from(a.applyImage(img).data), Buffer.from(b.applyImage(img).data), `${policy}: same pixels`);
  }
  const views = new Set<string>();
  for (let s = 0; s < 20; s++) views.add(JSON.stringify(drawTransform('strong', new Rng(s), 90, 70, 64).toJSON()));
  t.equal(views.size, 20, 'strong views differ between seeds');
  const weak = new Set<number>();
  for (let s = 0; s < 50; s++) weak.add(drawTransform('weak', new Rng(s), 90, 70, 64).geometric.affine.sy);
  t.equal(weak.size, AUGMENT_DEFAULTS.weak.scales.length, 'weak draws from its list of scales');
  t.not(deriveSeed(1, 0, 1), deriveSeed(1, 1, 0));
});

t.test('boxes that leave the view are clipped; degenerate ones dropped with their masks', async (t) => {
  // Shift left by 50 onto a 64 × 64 view.
  const tf = drawTransform('none', new Rng(0), 100, 100, 100);
  const shifted = tf.geometric.then(new GeometricTransform({ sx: 1, tx: -50, sy: 1, ty: 0 }, 100, 100, 64, 64));
  const boxes = [[10, 10, 40, 40], [40, 10, 80, 40], [60, 70, 70, 99], [60, 50, 70, 99], [50.2, 0, 50.7, 10]];
  const masks = boxes.map((b) => rectMask(100, 100, Math.floor(b[0]), b[1], Math.ceil(b[2]), b[3]));
  const out = new AugmentTransform(shifted).applyInstances({ boxes, masks });
  t.same(out.keep, [1, 3], 'gone left, gone below and sub-pixel boxes dropped');
  t.same(out.boxes, [[0, 10, 30, 40], [10, 50, 20, 64]], 'the others clipped to the view');
  t.equal(out.masks!.length, 2, 'masks dropped with their boxes');
  t.equal(out.masks![0].data.reduce((a, v) => a + v, 0), 30 * 30, 'the clipped mask keeps its visible part');
  t.equal(out.masks![1].data.reduce((a, v) => a + v, 0), 10 * 14);
});

t.test('the off-thread (sharp) view matches the TypeScript one: same placement, close pixels', async (t) => {
  for (const policy of POLICIES) {
    for (let seed = 0; seed < 4; seed++) {
      // A smooth image, so the two resampling kernels can only differ a little.
      const W = 150 + 17 * seed;
      const H = 110 + 9 * seed;
      const data = new Uint8Array(W * H * 3);
      for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) data.set([x % 256, (2 * y) % 256, (x + y) % 256], (y * W + x) * 3);
      const img = { data, width: W, height: H };
      const tf = drawTransform(policy, new Rng(seed), W, H, 64);
      const a = tf.applyImage(img);
      const b = await tf.applyImageOffThread(img);
      let diff = 0;
      let zeroMismatch = 0;
      for (let i = 0; i < a.data.length; i += 3) {
        diff += Math.abs(a.data[i] - b.data[i]);
        if ((a.data[i] + a.data[i + 1] + a.data[i + 2] === 0) !== (b.data[i] + b.data[i + 1] + b.data[i + 2] === 0)) zeroMismatch++;
      }
      t.ok(diff / (a.data.length / 3) < 4, `${policy} seed ${seed}: mean |Δ| ${(diff / (a.data.length / 3)).toFixed(2)}`);
      t.ok(zeroMismatch <= 64, `${policy} seed ${seed}: the padding covers the same pixels (${zeroMismatch} differ)`);
    }
  }
});
