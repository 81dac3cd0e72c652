// The files a pseudo-labeling run writes, and how `--resume` reads them back.
// Every input image ends in exactly one line of exactly one of them:
//   OUT            kept images, their pseudo labels (prediction records)
//   OUT.dropped    images left empty by the δ filter (image records)
//   OUT.errors     images that failed (error records with image_id)
// A crash can tear only the last line of each; resume cuts that line off and
// redoes its image, so nothing is lost and nothing is written twice.
import { closeSync, existsSync, ftruncateSync, openSync, readSync, fstatSync, createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

export interface LedgerPaths {
  out: string;
  dropped: string;
  errors: string;
}

export function ledgerPaths(out: string, errors?: string): LedgerPaths {
  return { out, dropped: `${out}.dropped`, errors: errors ?? `${out}.errors` };
}

/**
 * Cuts a torn last line (bytes after the last '\n') off `file`. Returns how
 * many bytes were cut; 0 when the file ends cleanly or does not exist.
 */
export function repairTornTail(file: string): number {
  if (!existsSync(file)) return 0;
  const fd = openSync(file, 'r+');
  try {
    const size = fstatSync(fd).size;
    const chunk = Buffer.alloc(64 * 1024);
    let end = size;
    while (end > 0) {
      const start = Math.max(0, end - chunk.length);
      const n = readSync(fd, chunk, 0, end - start, start);
      const nl = chunk.subarray(0, n).lastIndexOf(0x0a);
      if (nl >= 0) {
        const keep = start + nl + 1;
        if (keep < size) ftruncateSync(fd, keep);
        return size - keep;
      }
      end = start;
    }
    if (size > 0) ftruncateSync(fd, 0);
    return size;
  } finally {
    closeSync(fd);
  }
}

/** The image ids already written to `file` (one JSON object per line). */
export async function idsIn(file: string, into: Set<number>): Promise<Set<number>> {
  if (!existsSync(file)) return into;
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n += 1;
    if (!line.trim()) continue;
    let rec: { image_id?: unknown };
    try {
      rec = JSON.parse(line) as { image_id?: unknown };
    } catch {
      throw new Error(`${file}:${n}: not JSON; this file is not a casl pseudo-label output, or it was edited — move it away or run without --resume`);
    }
    if (typeof rec.image_id === 'number') into.add(rec.image_id);
  }
  return into;
}

/** Repairs the three files and returns every image id they account for. */
export async function resumeLedger(paths: LedgerPaths): Promise<{ done: Set<number>; repairedBytes: number }> {
  let repairedBytes = 0;
  const done = new Set<number>();
  for (const f of [paths.out, paths.dropped, paths.errors]) {
    repairedBytes += repairTornTail(f);
    await idsIn(f, done);
  }
  return { done, repairedBytes };
}
