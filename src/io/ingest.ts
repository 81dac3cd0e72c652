// Ingestion: globs → image records `{image_id, file_name}`, in a
// deterministic order, without opening a single image (decoding is the
// `decodeImages` stage's job).
//
// Memory: the matched paths are listed first and sorted, because fast-glob
// walks directories in whatever order the file system returns them and the
// order must not depend on the machine. Only the relative path strings are
// held (about 100 bytes a file: 10 MB for 100,000 files); records are then
// made one at a time as downstream asks for them.
//
// image_id: the first 52 bits of SHA-1 of `file_name` (NFC-normalised,
// `/`-separated, relative to the root), plus 1, so it is a positive safe
// integer that depends only on the path: the same on every run and every
// machine, whatever else is in the directory, and shards can be cut by it
// without coordination. Two paths hashing to the same id (odds about 1 in
// 10^6 at 100,000 files) are reported, never merged.
import { createHash } from 'node:crypto';
import { readdir, statSync } from 'node:fs';
import path from 'node:path';
import fg from 'fast-glob';
import _ from 'highland';
import { UsageError } from '../cli/command.js';
import type { ErrorRecord, ImageRecord } from '../records.js';
import type { OrError, Stream } from '../streams/stage.js';

/** What a directory given as an argument expands to: the formats the decoder reads. */
export const IMAGE_EXTENSIONS = ['jpg', 'jpeg', 'jpe', 'png', 'webp', 'tif', 'tiff', 'gif', 'avif'] as const;

/** The stable id of an image, from its `file_name` relative to the root. */
export function imageIdFor(fileName: string): number {
  const digest = createHash('sha1').update(fileName.normalize('NFC'), 'utf8').digest();
  return Number(digest.readBigUInt64BE(0) >> 12n) + 1;
}

export interface Shard {
  index: number;
  count: number;
}

/** `'1/3'` → `{index: 1, count: 3}`; shards are numbered from 0. */
export function parseShard(spec: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(spec.trim());
  if (!m) throw new UsageError(`--shard takes i/N (e.g. 0/4), got '${spec}'`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1 || index >= count) {
    throw new UsageError(`--shard ${spec}: need 0 <= i < N (shards are numbered 0 to N-1)`);
  }
  return { index, count };
}

/** Every image belongs to exactly one of N shards: the one numbered `image_id mod N`. */
export function inShard(imageId: number, shard: Shard | undefined): boolean {
  return !shard || imageId % shard.count === shard.index;
}

export interface Listing {
  /** Absolute root the file names are relative to. */
  root: string;
  /** Relative, `/`-separated, sorted by code unit, no duplicates. */
  files: string[];
  /** Directories that could not be read, and the like: reported, not skipped silently. */
  errors: ErrorRecord[];
  /** How many files each argument matched, in argument order. */
  matches: number[];
}

function toPosix(p: string): string {
  return path.sep === '/' ? p : p.split(path.sep).join('/');
}

/**
 * Lists the files that `patterns` match (fast-glob syntax; a directory means
 * every image under it), relative to `root`. Patterns that are not absolute
 * are taken from `cwd`.
 */
export async function listImages(
  patterns: string[],
  opts: { root: string; cwd?: string; /** Called for each match, e.g. a progress tick. */ onMatch?: () => void },
): Promise<Listing> {
  const cwd = opts.cwd ?? process.cwd();
  const root = path.resolve(cwd, opts.root);
  let rootIsDir = false;
  try {
    rootIsDir = statSync(root).isDirectory();
  } catch {
    // reported just below
  }
  if (!rootIsDir) throw new UsageError(`--root ${opts.root}: not a directory (file names are written relative to it)`);

  const errors: ErrorRecord[] = [];
  const rel = (abs: string) => toPosix(path.relative(root, abs));
  // fast-glob can only suppress a directory it cannot read, or fail the
  // whole walk; this adapter lets it go on and keeps a record of it.
  const reportingReaddir = ((dir: string, ...rest: unknown[]) => {
    const cb = rest.pop() as (e: NodeJS.ErrnoException | null, v?: unknown) => void;
    const report = (e: NodeJS.ErrnoException | null, entries?: unknown) => {
      if (e) errors.push({ error: `cannot list directory: ${e.code ?? e.message}`, stage: 'ingest', file_name: rel(dir) || '.' });
      cb(e, entries);
    };
    if (rest.length > 0) readdir(dir, rest[0] as { withFileTypes: true }, report);
    else readdir(dir, report);
  }) as unknown as typeof readdir;

  const found: string[] = [];
  const matches: number[] = [];
  const outside: string[] = [];
  for (const arg of patterns) {
    let pattern = arg;
    const abs = path.resolve(cwd, arg);
    let isDir = false;
    try {
      isDir = !fg.isDynamicPattern(arg) && statSync(abs).isDirectory();
    } catch {
      // not an existing path: a pattern
    }
    if (isDir) pattern = `${fg.escapePath(toPosix(abs))}/**/*.{${IMAGE_EXTENSIONS.join(',')}}`;
    let n = 0;
    const stream = fg.stream(pattern, {
      cwd,
      absolute: true,
      onlyFiles: true,
      caseSensitiveMatch: !isDir,
      suppressErrors: true,
      // Duplicates are dropped after sorting; fast-glob's own set would be a second copy of every path.
      unique: false,
      fs: { readdir: reportingReaddir },
    });
    for await (const entry of stream) {
      const name = rel(entry as string);
      if (name.startsWith('../') || name === '..' || path.isAbsolute(name)) {
        if (outside.length < 3) outside.push(entry as string);
        continue;
      }
      n++;
      found.push(name);
      opts.onMatch?.();
    }
    matches.push(n);
  }
  if (outside.length > 0) {
    throw new UsageError(`files outside --root ${root} matched (e.g. ${outside.join(', ')}); pass a --root that contains every file`);
  }
  found.sort();
  const files = found.filter((f, i) => i === 0 || f !== found[i - 1]);
  return { root, files, errors, matches };
}

/**
 * A listing → image records of one shard (or all), in the listing's order;
 * the listing's errors come first. Lazy: a record is made when pulled.
 * `total` is the number of files in the shard (for a progress bar).
 *
 *     ['a.jpg', 'b/c.png']  →  {image_id: 4021…, file_name: 'a.jpg'}, {image_id: 77…, file_name: 'b/c.png'}
 */
export function ingestRecords(listing: Listing, shard?: Shard): { total: number; records: Stream<OrError<ImageRecord>> } {
  const ids = new Float64Array(listing.files.length);
  let total = 0;
  for (let i = 0; i < ids.length; i++) {
    ids[i] = imageIdFor(listing.files[i]);
    if (inShard(ids[i], shard)) total++;
  }
  const sorted = ids.slice().sort();
  const collided = new Set<number>();
  for (let i = 1; i < sorted.length; i++) if (sorted[i] === sorted[i - 1]) collided.add(sorted[i]);
  const firstWithId = new Map<number, string>();

  function* records(): Generator<OrError<ImageRecord>> {
    yield* listing.errors;
    for (let i = 0; i < ids.length; i++) {
      const image_id = ids[i];
      if (!inShard(image_id, shard)) continue;
      const file_name = listing.files[i];
      if (collided.has(image_id)) {
        const first = firstWithId.get(image_id);
        if (first !== undefined) {
          yield { error: `image_id ${image_id} is also the id of '${first}' (hash collision); rename one of the two files`, stage: 'ingest', file_name, image_id };
          continue;
        }
        firstWithId.set(image_id, file_name);
      }
      yield { image_id, file_name };
    }
  }
  return { total, records: _(records()) };
}
