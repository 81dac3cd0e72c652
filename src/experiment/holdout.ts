// `casl experiment --holdout N`: the same experiment scored on labeled
// images held out of every stage's training instead of on val, for choosing
// settings (a finetune's initialisation, a warmup's length, S) without ever
// looking at val. The derived fixtures directory holds the fit and held-out
// halves of labeled.json as labeled.json and val.json, and links everything
// else to the source fixtures; its manifest is the source's plus the split,
// so its stages are cached apart from the real experiment's.
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fixturePaths } from './stages.js';

interface Coco {
  images: { id: number }[];
  annotations: { image_id: number }[];
  [key: string]: unknown;
}

/** Every n-th labeled image by ascending id (positions 0, n, 2n, …) is held out; the rest is the fit split. */
export function splitHoldout(coco: Coco, n: number): { fit: Coco; holdout: Coco } {
  const held = new Set(coco.images.map((im) => im.id).sort((a, b) => a - b).filter((_, k) => k % n === 0));
  const part = (keep: (id: number) => boolean): Coco => ({
    ...coco,
    images: coco.images.filter((im) => keep(im.id)),
    annotations: coco.annotations.filter((a) => keep(a.image_id)),
  });
  return { fit: part((id) => !held.has(id)), holdout: part((id) => held.has(id)) };
}

/** Writes (or rewrites) the held-out fixtures of `src` in `dst`; returns their size. */
export function makeHoldoutFixtures(src: string, dst: string, n: number): { fit: number; holdout: number } {
  if (!Number.isInteger(n) || n < 2) throw new Error(`--holdout ${n}: hold out every n-th labeled image with n ≥ 2 (3: a third)`);
  const manifestFile = path.join(src, 'fixtures.json');
  if (!existsSync(manifestFile)) throw new Error(`${manifestFile} is missing: make the fixtures first (make fixtures), then split them with --holdout`);
  const s = fixturePaths(src);
  const d = fixturePaths(dst);
  const { fit, holdout } = splitHoldout(JSON.parse(readFileSync(s.labeled, 'utf8')) as Coco, n);
  if (fit.images.length === 0 || holdout.images.length === 0) throw new Error(`${s.labeled}: ${fit.images.length + holdout.images.length} labeled images cannot be split every ${n}`);
  mkdirSync(path.dirname(d.labeled), { recursive: true });
  mkdirSync(path.dirname(d.labeledRoot), { recursive: true });
  writeFileSync(d.labeled, JSON.stringify(fit));
  writeFileSync(d.val, JSON.stringify(holdout));
  // The held-out images stay where they are: val's root is the labeled images.
  for (const [link, target] of [[d.labeledRoot, s.labeledRoot], [d.valRoot, s.labeledRoot], [d.unlabeledRoot, s.unlabeledRoot], [d.hidden, s.hidden]]) {
    rmSync(link, { force: true });
    symlinkSync(path.resolve(target), link);
  }
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as Record<string, unknown>;
  const split = { every: n, fit: fit.images.length, holdout: holdout.images.length };
  writeFileSync(path.join(dst, 'fixtures.json'), JSON.stringify({ ...manifest, holdout: split }, null, 2) + '\n');
  return { fit: split.fit, holdout: split.holdout };
}
