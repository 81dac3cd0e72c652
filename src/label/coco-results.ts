// The pseudo labels as a pycocotools results file: one JSON array with one
// element per kept instance,
//   {"image_id", "category_id", "segmentation": {"size", "counts"}, "score", "bbox"}
// which `COCO.loadRes` and `COCOeval(…, 'segm' | 'bbox')` read as they are
// (`segmentation` only where the labeler made masks; a box-only file is a
// bbox results file). The JSONL ledger (ledger.ts) is the record of the run;
// this file is made from it after the run, one line at a time and written
// as it goes (never the whole array in memory), into OUT.tmp renamed onto
// OUT at the end: a resumed or repeated run makes it again from the whole
// ledger, so it is exact after any crash, and a reader never sees half of one.
// image_id is the ledger's (ingest's SHA-1 of file_name relative to --root),
// which is also the id the fixtures' ground truth files give each image.
import { createReadStream, createWriteStream, renameSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { predictionRecordProblem, type PredictionRecord } from '../records.js';

export interface CocoResultsCounts {
  images: number;
  detections: number;
  masks: number;
}

/** Writes `out` from the kept-images ledger `jsonl`. A line that is not a prediction record is an error naming the file and line. */
export async function writeCocoResults(jsonl: string, out: string): Promise<CocoResultsCounts> {
  const tmp = `${out}.tmp`;
  const sink = createWriteStream(tmp);
  const counts: CocoResultsCounts = { images: 0, detections: 0, masks: 0 };
  const write = async (s: string) => {
    if (!sink.write(s)) await once(sink, 'drain');
  };
  try {
    await write('[');
    let lineNo = 0;
    for await (const line of createInterface({ input: createReadStream(jsonl), crlfDelay: Infinity })) {
      lineNo += 1;
      if (!line.trim()) continue;
      let rec: unknown;
      try {
        rec = JSON.parse(line);
      } catch (e) {
        throw new Error(`${jsonl}:${lineNo}: not JSON (${(e as Error).message}); a torn last line is cut by casl pseudo-label --resume`);
      }
      const problem = predictionRecordProblem(rec);
      if (problem) throw new Error(`${jsonl}:${lineNo}: not a pseudo-label record: ${problem}`);
      const r = rec as PredictionRecord;
      counts.images += 1;
      for (const [j, inst] of r.instances.entries()) {
        if (typeof inst.category_id !== 'number') throw new Error(`${jsonl}:${lineNo}: instances[${j}] has no numeric category_id, which a results file needs`);
        const det: Record<string, unknown> = { image_id: r.image_id, category_id: inst.category_id };
        if (inst.segmentation) {
          det.segmentation = { size: inst.segmentation.size, counts: inst.segmentation.counts };
          counts.masks += 1;
        }
        det.score = inst.score;
        det.bbox = inst.bbox;
        await write((counts.detections ? ',\n' : '\n') + JSON.stringify(det));
        counts.detections += 1;
      }
    }
    await write('\n]\n');
    sink.end();
    await once(sink, 'finish');
    renameSync(tmp, out);
    return counts;
  } catch (e) {
    // The error thrown is e: a write abandoned here may still fail once the
    // stream is destroyed, and the file's open may not have finished yet, so
    // wait for the close before removing it (else it reappears, or the
    // late error is uncaught).
    sink.on('error', () => {});
    sink.destroy();
    if (!sink.closed) await new Promise<void>((r) => sink.once('close', () => r()));
    rmSync(tmp, { force: true });
    throw e;
  }
}
