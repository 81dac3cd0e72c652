import { appendFileSync, writeFileSync } from 'node:fs';
import type { Command } from '../command.js';
import { UsageError } from '../command.js';
import { type PredictionRecord, predictionRecordProblem } from '../../records.js';
import { errorSink, mapOk, progress, readJsonl, routeErrors, serializeJsonl, writeTo, type OrError } from '../../streams/index.js';
import { FilterStats, filterByScore } from '../../label/filter.js';

export const command: Command = {
  name: 'filter',
  summary: 'keep the instances scoring > δ, drop images left empty (CA-SSL Eq. 2–3); prints what went in and out',
  usage: 'casl filter [PRED.jsonl|-] --delta δ [--dropped FILE] [--summary FILE] [--errors FILE]',
  example: "casl ingest 'data/fixtures/images/unlabeled/*' --root data/fixtures/images/unlabeled | casl infer --model runs/labeler/model --root data/fixtures/images/unlabeled | casl filter --delta 0.5 > pseudo.jsonl",
  pipeline: 'filter',
  options: {
    delta: { type: 'number', help: 'keep instances whose score is strictly greater than this' },
    dropped: { type: 'string', help: 'write the images dropped as empty here (image records, JSONL)' },
    summary: { type: 'string', help: 'write the counts and histograms here as JSON' },
    errors: { type: 'string', help: 'write error records (bad input lines) here as JSONL instead of stderr' },
    quiet: { type: 'boolean', help: 'no progress on stderr', default: false },
  },
  async run(opts, positionals, ctx) {
    const delta = opts.delta as number | undefined;
    if (delta === undefined || !(delta >= 0 && delta < 1)) {
      throw new UsageError(`--delta must be in [0, 1), got ${delta ?? 'nothing'} (set it with --delta or in pipelines/filter.yaml)`);
    }
    if (positionals.length > 1) throw new UsageError('give one input file (or - for stdin)');
    const input = positionals[0] ?? '-';
    const stats = new FilterStats(delta);
    const p = progress('filter', { quiet: opts.quiet as boolean, stderr: ctx.stderr });
    const sink = errorSink({ file: opts.errors as string | undefined, stderr: ctx.stderr, command: 'filter' });
    const dropped: string[] = [];
    const droppedFile = opts.dropped as string | undefined;
    if (droppedFile) writeFileSync(droppedFile, '');

    const kept = readJsonl<PredictionRecord>(input, { stdin: ctx.stdin })
      .through(mapOk('filter', (rec: PredictionRecord) => {
        const problem = predictionRecordProblem(rec);
        if (problem) throw new Error(`not a prediction record (the output of casl infer): ${problem}`);
        const out = filterByScore(rec, delta);
        stats.add(rec, out);
        if (!out && droppedFile) {
          dropped.push(JSON.stringify({ image_id: rec.image_id, file_name: rec.file_name, width: rec.width, height: rec.height }) + '\n');
          if (dropped.length >= 256) appendFileSync(droppedFile, dropped.splice(0).join(''));
        }
        return out;
      }))
      .through(p.tap)
      .filter((x: OrError<PredictionRecord | null>) => x !== null) as Highland.Stream<OrError<PredictionRecord>>;

    const { closedEarly } = await kept
      .through(routeErrors<PredictionRecord>(sink, p.summary))
      .through(serializeJsonl())
      .through(writeTo(ctx.stdout));
    if (droppedFile && dropped.length) appendFileSync(droppedFile, dropped.join(''));
    await sink.close();
    p.done();
    if (closedEarly) return 0;
    ctx.stderr.write(stats.format());
    if (opts.summary) writeFileSync(opts.summary as string, JSON.stringify(stats.toJSON(), null, 2) + '\n');
    return p.summary.errors > 0 ? 1 : 0;
  },
};
