// `casl eval`: COCO AP of detections against a COCO ground truth, with
// pycocotools' figures exactly (see src/eval/).
import type { Command } from '../command.js';
import { UsageError } from '../command.js';
import { DetectionError, evaluateFiles } from '../../eval/detections.js';
import { GroundTruthError } from '../../eval/ground-truth.js';
import { MaskError } from '../../geometry/mask.js';
import { perCategoryTable, summaryJson, summaryLines } from '../../eval/summary.js';
import type { IouType } from '../../eval/evaluator.js';

export const command: Command = {
  name: 'eval',
  summary: 'COCO AP/AR of detections (results JSON or prediction JSONL), identical to pycocotools',
  usage: 'casl eval --gt GT.json --dets DETS [--iou bbox|segm] [--agnostic] [--json]',
  example: 'casl eval --gt data/fixtures/annotations/val.json --dets preds.jsonl --iou segm --agnostic',
  options: {
    gt: { type: 'string', help: 'COCO ground-truth JSON (images, annotations, categories)' },
    dets: {
      type: 'string',
      help: "detections: a COCO results JSON array (pycocotools' format, as is) or casl prediction JSONL (streamed); '-' reads JSONL from stdin",
    },
    iou: { type: 'string', choices: ['bbox', 'segm'], help: 'IoU of boxes or of masks', default: 'bbox' },
    agnostic: { type: 'boolean', help: 'map every category to one before evaluating (AP^det-a, AP^seg-a)', default: false },
    json: { type: 'boolean', help: 'print one JSON object (the 12 figures under pycocotools\' names, per category) instead of text', default: false },
  },
  async run(opts, positionals, ctx) {
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'; pass files with --gt and --dets`);
    const gt = opts.gt as string | undefined;
    const dets = opts.dets as string | undefined;
    if (!gt) throw new UsageError('--gt GT.json is required (the COCO ground truth to evaluate against)');
    if (!dets) throw new UsageError('--dets DETS is required (a results JSON array or prediction JSONL, or - for stdin)');
    const iouType = opts.iou as IouType;
    const t0 = performance.now();
    let report;
    try {
      report = await evaluateFiles({ gt, dets, iouType, agnostic: opts.agnostic as boolean, stdin: ctx.stdin });
    } catch (e) {
      if (e instanceof DetectionError || e instanceof GroundTruthError || e instanceof MaskError) throw new UsageError(e.message);
      throw e;
    }
    const seconds = (performance.now() - t0) / 1000;
    const notes = [
      `evaluated ${report.detections} detections on ${report.images} images (${iouType}${report.agnostic ? ', class-agnostic' : ''}) in ${seconds.toFixed(2)} s`,
    ];
    if (report.unknownCategory > 0) {
      notes.push(`${report.unknownCategory} detections have a category_id not in ${gt}'s categories and were left out, as pycocotools leaves them out (--agnostic counts them)`);
    }
    if (report.errorRecords > 0) {
      notes.push(`${report.errorRecords} error records in ${dets}: those images count as having no detections`);
    }
    for (const n of notes) ctx.stderr.write(`casl eval: ${n}\n`);
    if (opts.json) {
      ctx.stdout.write(JSON.stringify(summaryJson(report)) + '\n');
    } else {
      ctx.stdout.write([...summaryLines(report), '', ...perCategoryTable(report), ''].join('\n'));
    }
    return 0;
  },
};
