import { realpath, open, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { Command } from '../command.js';
import { UsageError } from '../command.js';
import { GroundTruth } from '../../view/ground-truth.js';
import { IdleGate, JsonlIndex } from '../../view/jsonl-index.js';
import { createViewServer } from '../../view/server.js';
import { warmUpSharp } from '../../view/thumbnails.js';

const LOOPBACK = ['127.0.0.1', 'localhost', '::1'];

export const command: Command = {
  name: 'view',
  summary: 'browse predictions / pseudo labels in a local web page: boxes, masks, a δ slider with the filter\'s counts',
  usage: 'casl view PRED.jsonl --root IMAGES [--gt GT.json] [--port P] [--host H]',
  example: 'casl view runs/pseudo-labels.jsonl --root data/fixtures/images/unlabeled --gt data/fixtures/annotations/unlabeled_hidden_gt.json',
  options: {
    root: { type: 'string', help: 'folder the records\' file_name are relative to; nothing outside it is served' },
    gt: { type: 'string', help: 'COCO ground truth: enables the lowest-recall filter (IoU ≥ 0.5, class-agnostic) and GT boxes' },
    port: { type: 'integer', help: 'TCP port (0 picks a free one)', default: 8765 },
    host: { type: 'string', help: 'address to listen on; anything but loopback exposes your images to the network', default: '127.0.0.1' },
    'page-size': { type: 'integer', help: 'images per page', default: 48 },
    'thumb-size': { type: 'integer', help: 'longer side of grid thumbnails, pixels', default: 256 },
    'image-size': { type: 'integer', help: 'longer side of the image view, pixels', default: 1280 },
    'cache-mb': { type: 'number', help: 'memory for rendered thumbnails and images (LRU), MB', default: 64 },
  },
  async run(opts, positionals, ctx) {
    const [file, ...extra] = positionals;
    if (!file) throw new UsageError('name the prediction JSONL: casl view PRED.jsonl --root IMAGES');
    if (extra.length > 0) throw new UsageError(`one JSONL at a time; got also ${extra.join(' ')}`);
    if (!opts.root) throw new UsageError('--root IMAGES is required: the folder the records\' file_name are relative to');
    for (const k of ['page-size', 'thumb-size', 'image-size'] as const) {
      if ((opts[k] as number) < 1) throw new UsageError(`--${k} must be at least 1, got ${opts[k]}`);
    }
    if (!((opts['cache-mb'] as number) >= 0)) throw new UsageError(`--cache-mb must be ≥ 0, got ${opts['cache-mb']}`);
    const port = opts.port as number;
    if (port < 0 || port > 65535) throw new UsageError(`--port must be in 0..65535, got ${port}`);
    let root: string;
    try {
      root = await realpath(opts.root as string);
      if (!(await stat(root)).isDirectory()) throw new Error('not a directory');
    } catch (e) {
      throw new UsageError(`--root ${opts.root}: ${(e as Error).message}; give the images folder`);
    }
    let jsonl;
    try {
      jsonl = await open(file, 'r');
    } catch (e) {
      throw new UsageError(`cannot open ${file}: ${(e as Error).message}`);
    }
    const gt = opts.gt ? await GroundTruth.load(opts.gt as string) : undefined;

    await warmUpSharp();
    const host = opts.host as string;
    // The index is built while the server already serves the file's first
    // pages: a large file opens as fast as a small one.
    const t0 = performance.now();
    let lastReport = t0;
    const gate = new IdleGate();
    const building = JsonlIndex.build(file, gt, (n, bytes) => {
      const now = performance.now();
      if (now - lastReport > 1000) {
        lastReport = now;
        ctx.stderr.write(`casl view: indexing ${file}: ${n} records, ${(bytes / 2 ** 20).toFixed(0)} MB\n`);
      }
    }, gate.wait);
    const server = createViewServer({
      index: building, file, jsonl, root, gt,
      pageSize: opts['page-size'] as number,
      thumbSize: opts['thumb-size'] as number,
      imageSize: opts['image-size'] as number,
      cacheBytes: (opts['cache-mb'] as number) * 2 ** 20,
      loopbackOnly: LOOPBACK.includes(host),
      gate,
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => {
        reject(e.code === 'EADDRINUSE' ? new UsageError(`port ${port} on ${host} is in use; pick another with --port (0 = any free port)`) : e);
      });
      server.listen(port, host, resolve);
    });
    const addr = server.address() as AddressInfo;
    const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    ctx.stderr.write(`casl view: serving on http://${shown}:${addr.port}/  (Ctrl-C to stop)\n`);
    if (!LOOPBACK.includes(host)) ctx.stderr.write(`casl view: warning: listening on ${host}, not loopback: anyone who reaches it sees the images under --root\n`);
    let failed: Error | undefined;
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        server.close(() => resolve());
        server.closeAllConnections();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      building.then((index) => {
        const c = index.counts(0);
        ctx.stderr.write(`casl view: indexed ${index.count} records (${c.images} images, ${c.instances} instances, `
          + `${c.errors} errors) in ${((performance.now() - t0) / 1000).toFixed(2)} s${gt ? `; ground truth for ${gt.size} images` : ''}\n`);
      }, (e: Error) => {
        failed = e;
        stop();
      });
    });
    await jsonl.close();
    if (failed) throw new Error(`indexing ${file} failed: ${failed.message}`);
    return 0;
  },
};
