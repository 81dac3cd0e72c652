// The δ filter of CA-SSL (paper Eq. 2–3): keep the instances whose score is
// strictly greater than δ; an image left with none is dropped. Pure functions
// over prediction records, plus the counts and histograms the summary prints.
import type { PredictionRecord } from '../records.js';

/** The record with only its instances scoring > δ, or null when none is left. */
export function filterByScore(rec: PredictionRecord, delta: number): PredictionRecord | null {
  const instances = rec.instances.filter((inst) => inst.score > delta);
  if (instances.length === 0) return null;
  return { ...rec, instances, meta: { ...rec.meta, delta } };
}

const SCORE_BINS = 10;
const COUNT_EDGES = [1, 2, 3, 5, 10, 20, 50, 100];

/** What went in and out of the filter, with histograms of what was kept. */
export class FilterStats {
  imagesIn = 0;
  imagesOut = 0;
  instancesIn = 0;
  instancesOut = 0;
  /** Kept instances per score decile of (δ, 1]. */
  readonly scoreHist = new Array<number>(SCORE_BINS).fill(0);
  /** Kept images by instance count, bins [COUNT_EDGES[i], COUNT_EDGES[i+1]). */
  readonly countHist = new Array<number>(COUNT_EDGES.length).fill(0);

  constructor(readonly delta: number) {}

  add(input: PredictionRecord, output: PredictionRecord | null): void {
    this.imagesIn += 1;
    this.instancesIn += input.instances.length;
    if (!output) return;
    this.imagesOut += 1;
    this.instancesOut += output.instances.length;
    for (const inst of output.instances) {
      this.scoreHist[Math.min(SCORE_BINS - 1, Math.floor(inst.score * SCORE_BINS))] += 1;
    }
    let bin = COUNT_EDGES.length - 1;
    while (bin > 0 && output.instances.length < COUNT_EDGES[bin]) bin -= 1;
    this.countHist[bin] += 1;
  }

  get imagesDropped(): number {
    return this.imagesIn - this.imagesOut;
  }

  toJSON() {
    return {
      delta: this.delta,
      images_in: this.imagesIn,
      images_out: this.imagesOut,
      images_dropped_empty: this.imagesDropped,
      instances_in: this.instancesIn,
      instances_out: this.instancesOut,
      score_hist: Object.fromEntries(this.scoreHist.map((n, i) => [`${(i / SCORE_BINS).toFixed(1)}-${((i + 1) / SCORE_BINS).toFixed(1)}`, n])),
      instances_per_image_hist: Object.fromEntries(this.countHist.map((n, i) => [
        i === COUNT_EDGES.length - 1 ? `${COUNT_EDGES[i]}+` : COUNT_EDGES[i + 1] - COUNT_EDGES[i] === 1 ? `${COUNT_EDGES[i]}` : `${COUNT_EDGES[i]}-${COUNT_EDGES[i + 1] - 1}`, n])),
    };
  }

  /** The summary for people: counts, then the two histograms as bars. */
  format(): string {
    const j = this.toJSON();
    const bar = (n: number, max: number) => '#'.repeat(max ? Math.round((30 * n) / max) : 0);
    const lines = [
      `filter δ=${this.delta}: images ${j.images_in} in, ${j.images_out} out (${j.images_dropped_empty} dropped as empty); instances ${j.instances_in} in, ${j.instances_out} out`,
      'kept instances by score:',
    ];
    const sMax = Math.max(...this.scoreHist);
    for (const [k, n] of Object.entries(j.score_hist)) if (n > 0) lines.push(`  ${k.padEnd(8)} ${String(n).padStart(7)} ${bar(n, sMax)}`);
    lines.push('kept images by instances per image:');
    const cMax = Math.max(...this.countHist);
    for (const [k, n] of Object.entries(j.instances_per_image_hist)) if (n > 0) lines.push(`  ${k.padEnd(8)} ${String(n).padStart(7)} ${bar(n, cMax)}`);
    return lines.join('\n') + '\n';
  }
}
