// A profile's fixture classes ('classes', 'class-tail'): the fixtures stage
// makes them, the default keeps its cache keys, and fixtures of other classes
// are refused with a message that says which.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { pipelineFile } from '../src/cli/options.js';
import { defaultFixturesDir } from '../src/cli/commands/experiment.js';
import { buildPlan } from '../src/experiment/plan.js';
import { loadProfile } from '../src/experiment/profile.js';
import { smokeProfilesWith } from './smoke-profile.js';
import { tempDirs } from './temp-dirs.js';

const SAMPLE = path.join(import.meta.dirname, '..', 'fixtures', 'sample');
const CASL = path.join(import.meta.dirname, '..', 'bin', 'casl.js');
const tempDir = tempDirs(t);

const profilesWith = (extra: Record<string, unknown>): string => smokeProfilesWith(tempDir('casl-classes-'), 'lt', extra);

t.test('the profile keys become the fixtures stage config, only when not the default', async (t) => {
  const lt = loadProfile(profilesWith({ classes: 20, 'class-tail': 1 }), 'lt');
  t.same(lt.mix, { count: 20, tail: 1 });
  t.same(buildPlan(lt).stages.find((s) => s.kind === 'fixtures')!.config, { seed: 1, classes: 20, 'class-tail': 1 });
  const plain = loadProfile(pipelineFile('ca-ssl'), 'smoke');
  t.same(plain.mix, { count: 6, tail: 0 });
  t.same(buildPlan(plain).stages.find((s) => s.kind === 'fixtures')!.config, { seed: 1 }, 'the six-class plan as before');
  t.equal(defaultFixturesDir(plain.mix), 'data/fixtures');
  t.equal(defaultFixturesDir(lt.mix), 'data/fixtures-c20-t1');
  t.throws(() => loadProfile(profilesWith({ classes: 21 }), 'lt'), /profile 'lt': key 'classes' must be <= 20/);
  const novel = loadProfile(profilesWith({ 'unlabeled-classes': 12 }), 'lt');
  t.same(buildPlan(novel).stages.find((s) => s.kind === 'fixtures')!.config, { seed: 1, classes: 6, 'class-tail': 0, 'unlabeled-classes': 12 });
  t.equal(defaultFixturesDir(novel.mix), 'data/fixtures-c6-t0-u12');
});

t.test('casl experiment refuses fixtures of other classes, and finds its own by default', async (t) => {
  const profiles = profilesWith({ classes: 20, 'class-tail': 1 });
  const cwd = tempDir('casl-classes-cwd-');
  const run = (args: string[]) => spawnSync(process.execPath, [CASL, 'experiment', '--profiles', profiles, '--profile', 'lt', '--out', path.join(cwd, 'out'), '--dry-run', ...args], { encoding: 'utf8', cwd });
  const wrong = run(['--fixtures', SAMPLE]);
  t.equal(wrong.status, 2, wrong.stderr);
  t.match(wrong.stderr, /the fixtures in .*sample have 6 classes, uniform; profile 'lt' wants 20 classes, tail 1: pass --fixtures/);
  const none = run([]);
  t.equal(none.status, 2, none.stderr);
  t.match(none.stderr, /data\/fixtures-c20-t1\/fixtures\.json is missing/, 'the default directory is named for the classes');
  const novel = spawnSync(process.execPath, [CASL, 'experiment', '--profiles', profilesWith({ 'unlabeled-classes': 12 }), '--profile', 'lt', '--fixtures', SAMPLE, '--out', path.join(cwd, 'out2'), '--dry-run'], { encoding: 'utf8', cwd });
  t.match(novel.stderr, /have 6 classes, uniform; profile 'lt' wants 6 classes, uniform; the unlabeled images 12/);
});
