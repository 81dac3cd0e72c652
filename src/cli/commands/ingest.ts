import type { Command } from '../command.js';
import { UsageError } from '../command.js';
import { ingestRecords, listImages, parseShard } from '../../io/ingest.js';
import { finishRun, progress } from '../../streams/index.js';

export const command: Command = {
  name: 'ingest',
  summary: 'list images matching globs as image records (JSONL on stdout), sorted, with stable ids; never decodes',
  usage: 'casl ingest <glob|dir...> [--root DIR] [--shard i/N] [--errors FILE] [--quiet]',
  example: "casl ingest 'data/fixtures/images/unlabeled/*.{jpg,png}' --root data/fixtures/images/unlabeled --shard 0/4 > shard0.jsonl",
  options: {
    root: { type: 'string', help: 'file_name is written relative to this directory; every match must be inside it', default: '.' },
    shard: { type: 'string', help: 'keep shard i of N (0-based): the images with image_id mod N = i' },
    errors: { type: 'string', help: 'write error records (JSONL) to this file instead of stderr' },
    quiet: { type: 'boolean', help: 'no progress on stderr (the summary still appears if there were errors)', default: false },
  },
  async run(opts, positionals, ctx) {
    if (positionals.length === 0) {
      throw new UsageError(`name what to ingest: globs or directories, e.g. ${command.example}`);
    }
    const shard = opts.shard === undefined ? undefined : parseShard(opts.shard as string);
    // Listing a large tree on a network file system can take minutes: show it.
    const listingProgress = progress('ingest: listing', { quiet: opts.quiet as boolean, stderr: ctx.stderr, unit: 'files' });
    let listing;
    try {
      listing = await listImages(positionals, { root: opts.root as string, onMatch: () => listingProgress.add() });
    } finally {
      listingProgress.dismiss();
    }
    if (listing.files.length === 0) {
      const why = listing.errors.map((e) => `${e.file_name}: ${e.error}`).join('; ');
      throw new UsageError(`no files match ${positionals.map((p) => `'${p}'`).join(' ')}${why ? ` (${why})` : ''}; check the pattern (relative patterns start from the current directory, ${process.cwd()})`);
    }
    positionals.forEach((p, i) => {
      if (listing.matches[i] === 0) ctx.stderr.write(`casl ingest: warning: '${p}' matches no file\n`);
    });
    const { total, records } = ingestRecords(listing, shard);
    const { summary, closedEarly } = await finishRun(records, {
      command: 'ingest', out: ctx.stdout, stderr: ctx.stderr, total,
      quiet: opts.quiet as boolean, errors: opts.errors as string | undefined,
    });
    // Like the other stages: every good record is written, and the exit
    // status still tells a script that something was left out.
    return !closedEarly && summary.errors > 0 ? 1 : 0;
  },
};
