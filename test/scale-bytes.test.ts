import t from 'tap';
import { scaleBytes } from '../src/io/scale-bytes.js';

// The inference worker and toFloat32 promise the float32 bits of v / 255;
// the four-bytes-a-load path must give them at every alignment and length.
t.test('scaleBytes gives v / 255 as float32, bit for bit, at any alignment and length', async (t) => {
  const backing = new Uint8Array(1024 + 3);
  for (let i = 0; i < backing.length; i++) backing[i] = (i * 97 + 13) & 255;
  for (let v = 0; v < 256; v++) backing[v] = v; // every byte value at least once
  for (const offset of [0, 1, 2, 3]) {
    for (const n of [0, 1, 3, 4, 5, 255, 256, 1021, 1024]) {
      if (offset + n > backing.length) continue;
      const src = backing.subarray(offset, offset + n);
      const dst = new Float32Array(n + 1).fill(-1);
      scaleBytes(src, dst, n);
      let bad = -1;
      for (let i = 0; i < n; i++) if (dst[i] !== Math.fround(src[i] / 255)) { bad = i; break; }
      t.equal(bad, -1, `offset ${offset}, ${n} bytes: every value is v / 255`);
      t.equal(dst[n], -1, `offset ${offset}, ${n} bytes: nothing written past n`);
    }
  }
});
