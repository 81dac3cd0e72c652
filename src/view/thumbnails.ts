// Thumbnails and display-size images made by sharp on demand, kept in an LRU
// bounded in bytes, so paging through 100,000 images costs the same memory
// as paging through 100. Concurrent requests for one image share one render.
import sharp from 'sharp';

// libvips' own operation cache would hold decoded images beyond our bound.
sharp.cache(false);

/** Least-recently-used map bounded by the summed cost of its values. */
export class Lru<V> {
  private readonly map = new Map<string, { value: V; cost: number }>();
  private total = 0;

  constructor(readonly maxCost: number, private readonly costOf: (v: V) => number) {}

  get(key: string): V | undefined {
    const hit = this.map.get(key);
    if (!hit) return undefined;
    this.map.delete(key);
    this.map.set(key, hit);
    return hit.value;
  }

  set(key: string, value: V): void {
    const old = this.map.get(key);
    if (old) {
      this.total -= old.cost;
      this.map.delete(key);
    }
    const cost = this.costOf(value);
    if (cost > this.maxCost) return;
    this.map.set(key, { value, cost });
    this.total += cost;
    for (const [k, v] of this.map) {
      if (this.total <= this.maxCost) break;
      this.map.delete(k);
      this.total -= v.cost;
    }
  }

  get bytes(): number {
    return this.total;
  }

  get size(): number {
    return this.map.size;
  }
}

export interface Rendered {
  jpeg: Buffer;
  /** Size of the original image after EXIF orientation: the frame boxes are in. */
  width: number;
  height: number;
}

export class ImageServer {
  private readonly cache: Lru<Rendered>;
  private readonly sizes = new Lru<{ width: number; height: number }>(200_000, () => 1);
  private readonly pending = new Map<string, Promise<Rendered>>();

  constructor(maxBytes: number) {
    this.cache = new Lru(maxBytes, (r) => r.jpeg.length + 64);
  }

  /** `file` (an already-checked real path) as a JPEG whose longer side is at most `maxSide`. */
  async render(file: string, maxSide: number): Promise<Rendered> {
    const key = `${maxSide}:${file}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    let p = this.pending.get(key);
    if (!p) {
      p = renderJpeg(file, maxSide).finally(() => this.pending.delete(key));
      this.pending.set(key, p);
      const r = await p;
      this.cache.set(key, r);
      this.sizes.set(file, { width: r.width, height: r.height });
      return r;
    }
    return p;
  }

  /** Size of the original (EXIF-oriented) image, from its header only. */
  async size(file: string): Promise<{ width: number; height: number }> {
    const hit = this.sizes.get(file);
    if (hit) return hit;
    const m = await sharp(file).metadata();
    if (!m.width || !m.height) throw new Error('image has no size in its header');
    const s = orientedSize(m.width, m.height, m.orientation);
    this.sizes.set(file, s);
    return s;
  }

  get cachedBytes(): number {
    return this.cache.bytes;
  }
}

/**
 * Runs one tiny decode-resize-encode so libvips' first-use set-up (hundreds
 * of ms) is paid at start, not by the first page's thumbnails.
 */
export async function warmUpSharp(): Promise<void> {
  const jpeg = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#808080' } }).jpeg().toBuffer();
  await sharp(jpeg).rotate().resize(32, 32, { fit: 'inside' }).flatten({ background: '#808080' }).jpeg({ quality: 82 }).toBuffer();
  await sharp(jpeg).metadata();
}

function orientedSize(width: number, height: number, orientation?: number) {
  // EXIF orientations 5–8 turn the image by 90°.
  return orientation && orientation >= 5 ? { width: height, height: width } : { width, height };
}

async function renderJpeg(file: string, maxSide: number): Promise<Rendered> {
  const img = sharp(file, { failOn: 'none' });
  const m = await img.metadata();
  if (!m.width || !m.height) throw new Error('image has no size in its header');
  const { width, height } = orientedSize(m.width, m.height, m.orientation);
  const jpeg = await img
    .rotate()
    .resize(maxSide, maxSide, { fit: 'inside', withoutEnlargement: true })
    .flatten({ background: '#808080' })
    .jpeg({ quality: 82 })
    .toBuffer();
  return { jpeg, width, height };
}
