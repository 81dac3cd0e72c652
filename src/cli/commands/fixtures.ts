// `casl fixtures`: the synthetic scenes dataset every test and experiment uses.
import type { Command } from '../command.js';
import { UsageError } from '../command.js';
import { generateFixtures, outProblem } from '../../fixtures/generate.js';
import { writeMontage } from '../../fixtures/montage.js';
import { classMixProblem } from '../../fixtures/scene.js';
import { THING_CLASSES } from '../../fixtures/shapes.js';

function count(opts: Record<string, unknown>, key: string): number {
  const v = opts[key] as number;
  if (!Number.isInteger(v) || v < 0) throw new UsageError(`--${key} must be a whole number of images (0 or more), got ${v}`);
  return v;
}

export const command: Command = {
  name: 'fixtures',
  summary: 'make the synthetic scenes dataset (labeled, unlabeled and val splits, COCO JSON)',
  usage: 'casl fixtures --out DIR [--seed S] [--labeled N] [--unlabeled M] [--val V] [--entities|--no-entities] [--classes K] [--class-tail A] [--unlabeled-classes N] [--skip-classes S] [--montage PNG]',
  example: 'casl fixtures --out data/fixtures --seed 1 --labeled 300 --unlabeled 3000 --val 300',
  pipeline: 'fixtures',
  options: {
    out: { type: 'string', short: 'o', help: 'output directory (created; an older fixtures tree there is replaced)' },
    seed: { type: 'integer', help: 'random seed: the same seed gives the same bytes' },
    labeled: { type: 'integer', help: 'images in the labeled split' },
    unlabeled: { type: 'integer', help: 'images in the unlabeled split' },
    val: { type: 'integer', help: 'images in the val split' },
    entities: { type: 'boolean', help: 'also write {labeled,val}_entities.json and unlabeled_hidden_gt_entities.json: things and stuff (sky, ground, water)' },
    classes: { type: 'integer', help: `thing classes: the first K of ${THING_CLASSES.length} shapes (6: circle … star; more add look-alikes of those)` },
    'unlabeled-classes': { type: 'integer', help: 'the unlabeled split draws from the first N classes instead (N > --classes: objects of classes the labeled and val splits never name, as unlabeled images from another source have)' },
    'skip-classes': { type: 'integer', help: 'never draw the first S of those classes: scenes of the other shapes only (e.g. --classes 20 --skip-classes 6, a pretraining set with none of the six)' },
    'class-tail': { type: 'number', help: 'how unevenly the classes appear: the i-th (from 1) with weight 1/i^A; 0 uniform, 1 long-tailed like COCO' },
    'jpeg-quality': { type: 'integer', help: 'JPEG quality of the JPEG share of the images (1-100)' },
    concurrency: { type: 'integer', help: 'images being encoded while the next one renders' },
    montage: { type: 'string', help: 'also write a PNG of the first labeled images with their masks outlined (e.g. docs/fixtures.png)' },
    quiet: { type: 'boolean', help: 'no progress lines on stderr', default: false },
  },
  async run(opts, _positionals, ctx) {
    const out = opts.out as string | undefined;
    if (!out) throw new UsageError('--out DIR is required (e.g. --out data/fixtures)');
    const quality = opts['jpeg-quality'] as number;
    if (!Number.isInteger(quality) || quality < 1 || quality > 100) throw new UsageError(`--jpeg-quality must be 1-100, got ${quality}`);
    const concurrency = opts.concurrency as number;
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new UsageError(`--concurrency must be 1 or more, got ${concurrency}`);
    const seed = opts.seed as number;
    // Seeds are hashed as 32-bit integers: larger ones would silently alias.
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new UsageError(`--seed must be an integer from 0 to 4294967295, got ${seed}`);
    const mix = { count: opts.classes as number, tail: opts['class-tail'] as number, unlabeled: opts['unlabeled-classes'] as number | undefined, skip: opts['skip-classes'] as number | undefined };
    const mixProblem = classMixProblem(mix);
    if (mixProblem) throw new UsageError(`--classes / --class-tail / --unlabeled-classes / --skip-classes: ${mixProblem}`);
    const problem = outProblem(out);
    if (problem) throw new UsageError(problem);
    const started = Date.now();
    await generateFixtures({
      out, seed, labeled: count(opts, 'labeled'), unlabeled: count(opts, 'unlabeled'),
      val: count(opts, 'val'), entities: opts.entities as boolean, mix, jpegQuality: quality, concurrency,
      log: opts.quiet ? undefined : (line) => ctx.stderr.write(`casl fixtures: ${line}\n`),
    });
    const montage = opts.montage as string | undefined;
    if (montage) await writeMontage(out, montage);
    if (!opts.quiet) ctx.stderr.write(`casl fixtures: wrote ${out}${montage ? ` and ${montage}` : ''} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    return 0;
  },
};
