// `casl experiment`: the CA-SSL experiment end to end (pipelines/ca-ssl.yaml),
// every stage cached by its inputs' hashes under OUT/stages/, the table in
// OUT/table.md and on stdout, everything the report needs in OUT/results.json.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from '../command.js';
import { UsageError } from '../command.js';
import { pipelineFile } from '../options.js';
import { loadProfile } from '../../experiment/profile.js';
import { manifestMix } from '../../fixtures/generate.js';
import { type ClassMix, describeMix, isDefaultMix, sameMix, unlabeledMix } from '../../fixtures/scene.js';
import { makeHoldoutFixtures } from '../../experiment/holdout.js';
import { buildPlan } from '../../experiment/plan.js';
import { runPlan } from '../../experiment/runner.js';
import { caslExecutor, signalStages } from '../../experiment/stages.js';
import { collectResults, formatTable } from '../../experiment/table.js';

/** Where the experiment makes (or finds) its fixtures when --fixtures is not given. */
export function defaultFixturesDir(mix: ClassMix): string {
  const u = unlabeledMix(mix).count;
  return isDefaultMix(mix) ? 'data/fixtures' : `data/fixtures-c${mix.count}-t${mix.tail}${u === mix.count ? '' : `-u${u}`}`;
}

/** Why the fixtures in `dir` are not of the profile's classes, or null (also when there are none yet). */
function mixMismatch(dir: string, mix: ClassMix): string | null {
  const file = path.join(dir, 'fixtures.json');
  if (!existsSync(file)) return null;
  const have = manifestMix(JSON.parse(readFileSync(file, 'utf8')) as Parameters<typeof manifestMix>[0]);
  return sameMix(have, mix) ? null : `the fixtures in ${dir} have ${describeMix(have)}`;
}

export const command: Command = {
  name: 'experiment',
  summary: 'the CA-SSL experiment end to end: baseline, CA-SSL, the paper\'s ablations and sweeps, cached stage by stage; prints the table',
  usage: 'casl experiment [--profile quick|full] [--out DIR] [--fixtures DIR] [--profiles FILE] [--jobs N] [--holdout N] [--dry-run]',
  example: 'casl experiment --profile quick --out runs/ca-ssl',
  options: {
    profile: { type: 'string', help: 'profile of --profiles to run (quick: < 30 min, full: < 2.5 h on 2 cores)', default: 'full' },
    profiles: { type: 'string', help: 'the profiles file', default: pipelineFile('ca-ssl') },
    out: { type: 'string', short: 'o', help: 'experiment directory: stages/, table.md, results.json', default: 'runs/ca-ssl' },
    fixtures: { type: 'string', help: "the fixtures (casl fixtures --out DIR); made here when missing. Default: data/fixtures, or data/fixtures-cK-tA for a profile with K classes of tail A (its 'classes', 'class-tail'), with -uN when its unlabeled images have N ('unlabeled-classes')" },
    jobs: { type: 'integer', help: 'stages run at once, each on one thread (CASL_THREADS=1 unless set): at S = 128 two one-thread trainings do more steps than one on two threads (README: The experiment)', default: os.availableParallelism() },
    holdout: { type: 'integer', help: "score on every N-th labeled image (by id), held out of all training, instead of on val: for choosing settings without looking at val (the split goes in OUT/fixtures-holdout-N)" },
    'dry-run': { type: 'boolean', help: 'list the stages and which would run, run nothing', default: false },
  },
  async run(opts, positionals, ctx) {
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}': casl experiment takes only options`);
    const profile = loadProfile(opts.profiles as string, opts.profile as string);
    const plan = buildPlan(profile);
    const jobs = opts.jobs as number;
    if (jobs < 1) throw new UsageError(`--jobs ${jobs}: at least 1 stage must run at a time`);
    // The stages are child processes: they inherit this.
    if (jobs > 1 && process.env.CASL_THREADS === undefined) process.env.CASL_THREADS = '1';
    const out = path.resolve(opts.out as string);
    mkdirSync(out, { recursive: true });
    const t0 = performance.now();
    const log = (line: string) => ctx.stderr.write(`casl experiment: ${line}\n`);
    log(`profile ${profile.name}: ${plan.stages.length} stages, seeds ${profile.seeds.join(', ')}, ${jobs} at a time`);
    // Killed: stop the stage processes too (else they run on, orphaned, and
    // the next run would start the same stages beside them); each resumes
    // from its last checkpoint when the experiment runs again.
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.once(sig, () => {
        const n = signalStages(sig);
        log(`${sig}: stopped ${n} running stage${n === 1 ? '' : 's'}; run the same command again to resume them`);
        process.exit(sig === 'SIGINT' ? 130 : 143);
      });
    }
    let fixturesDir = path.resolve((opts.fixtures as string | undefined) ?? defaultFixturesDir(profile.mix));
    const mismatch = mixMismatch(fixturesDir, profile.mix);
    if (mismatch) throw new UsageError(`${mismatch}; profile '${profile.name}' wants ${describeMix(profile.mix)}: pass --fixtures with fixtures of those classes, or a new directory to make them in`);
    let scoredOn: string | undefined;
    const every = opts.holdout as number | undefined;
    if (every !== undefined) {
      const dst = path.join(out, `fixtures-holdout-${every}`);
      let n: { fit: number; holdout: number };
      try {
        n = makeHoldoutFixtures(fixturesDir, dst, every);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      log(`--holdout ${every}: training on ${n.fit} labeled images, scoring on the other ${n.holdout} (${path.relative(process.cwd(), dst)}); val is not read`);
      fixturesDir = dst;
      scoredOn = `${n.holdout} labeled images held out of all training (one in ${every} by id; not val)`;
    }
    const outcomes = await runPlan(plan, {
      runsDir: out, fixturesDir, execute: caslExecutor, log, jobs, dryRun: Boolean(opts['dry-run']),
    });
    if (opts['dry-run']) return 0;
    const results = { ...collectResults(plan, outcomes, (performance.now() - t0) / 1000), scoredOn };
    const table = formatTable(results);
    writeFileSync(path.join(out, 'table.md'), table);
    writeFileSync(path.join(out, 'results.json'), JSON.stringify({
      ...results,
      stages: plan.stages.map((s) => ({ ...outcomes.get(s.id)!, kind: s.kind, dir: path.relative(out, outcomes.get(s.id)!.dir) })),
      rows: results.rows, plan: { rows: plan.rows, sweep: plan.sweep, sweepBaseline: plan.sweepBaseline, galleryPseudo: plan.galleryPseudo },
    }, null, 2) + '\n');
    ctx.stdout.write(table);
    const failed = [...outcomes.values()].filter((o) => o.status === 'failed');
    if (failed.length) {
      log(`${failed.length} stages failed (their dependents were skipped): ${failed.map((f) => `${f.id}: ${f.error}`).join('; ')}`);
      return 1;
    }
    return 0;
  },
};
