// `casl train` as a user runs it: validated configuration, the warmup's
// refusal of ground truth, and SIGKILL then --resume. Spawns the built CLI
// (`make build` first).
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig, pipelineFile } from '../src/cli/options.js';
import { command } from '../src/cli/commands/train.js';
import { readCheckpoint } from '../src/model/checkpoint.js';

const REPO = path.join(import.meta.dirname, '..');
const SAMPLE = path.join(REPO, 'fixtures', 'sample');
const ROOT = path.join(SAMPLE, 'images', 'labeled');
const GT = path.join(SAMPLE, 'annotations', 'labeled.json');
const CASL = path.join(REPO, 'bin', 'casl.js');

const temps: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(path.join(tmpdir(), 'casl-train-cli-'));
  temps.push(d);
  return d;
};
t.teardown(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));

const casl = (args: string[]) => spawnSync(process.execPath, [CASL, ...args], { cwd: REPO, encoding: 'utf8' });

t.test('the three stage files validate and name their stage', async (t) => {
  for (const stage of ['labeler', 'warmup', 'finetune']) {
    const c = loadConfig(command, pipelineFile(stage));
    t.equal(c.stage, stage);
    t.ok(typeof c.steps === 'number' && typeof c.lr === 'number', `${stage}: steps and lr set`);
  }
  t.same(loadConfig(command, pipelineFile('finetune'))['init-parts'], ['backbone', 'neck', 'head', 'classifier']);
});

t.test('an unknown key or a wrong type is an error naming the key and the file', async (t) => {
  const dir = tempDir();
  const bad = path.join(dir, 'bad.yaml');
  writeFileSync(bad, 'stage: labeler\nbatchsize: 4\nlr: fast\n');
  const r = casl(['train', '--config', bad]);
  t.equal(r.status, 2);
  t.match(r.stderr, /bad\.yaml: .*unknown key 'batchsize'/);
  t.match(r.stderr, /key 'lr' must be number/);
  const missing = path.join(dir, 'short.yaml');
  writeFileSync(missing, 'stage: labeler\n');
  const r2 = casl(['train', '--config', missing]);
  t.equal(r2.status, 2);
  t.match(r2.stderr, /short\.yaml: key '[a-z-]+' is missing/);
  const r3 = casl(['train', '--stage', 'labeler', '--size', '100']);
  t.match(r3.stderr, /--size .* must be a multiple of 32, got 100/);
  const r4 = casl(['train']);
  t.match(r4.stderr, /choose a stage: --stage labeler\|warmup\|finetune/);
  for (const v of ['towers=0.1', 'backbone=-1', 'backbone=', 'backbone']) {
    const r5 = casl(['train', '--stage', 'labeler', '--lr-scale', v]);
    t.equal(r5.status, 2, v);
    t.match(r5.stderr, /--lr-scale \(or 'lr-scale' in .*labeler\.yaml\): '.*' is not PART=F with PART one of backbone, neck, head, classifier and F ≥ 0/, v);
  }
});

t.test('warmup cannot be given ground truth', async (t) => {
  const out = tempDir();
  const r = casl(['train', '--stage', 'warmup', '--train', GT, '--root', ROOT, '--out', out, '--val', '', '--quiet', '--backend', 'cpu']);
  t.equal(r.status, 2, r.stderr);
  t.match(r.stderr, /labeled\.json: no pseudo-label records .*never ground truth/s);
  t.notOk(existsSync(path.join(out, 'checkpoints')), 'nothing trained');
});

t.test('SIGKILL mid-run, then --resume: the same final weights as an uninterrupted run', async (t) => {
  const gt = JSON.parse(readFileSync(GT, 'utf8'));
  gt.images = gt.images.slice(0, 4);
  const ids = new Set(gt.images.map((im: { id: number }) => im.id));
  gt.annotations = gt.annotations.filter((a: { image_id: number }) => ids.has(a.image_id));
  const dir = tempDir();
  const train = path.join(dir, 'gt.json');
  writeFileSync(train, JSON.stringify(gt));
  const args = (out: string) => ['train', '--stage', 'labeler', '--train', train, '--root', ROOT, '--val', '', '--out', out,
    '--size', '64', '--batch-size', '2', '--steps', '10', '--checkpoint-every', '2', '--warmup-steps', '2', '--aug', 'strong',
    '--seed', '9', '--quiet', '--backend', 'wasm'];
  const full = path.join(dir, 'full');
  const r = casl(args(full));
  t.equal(r.status, 0, r.stderr);

  const cut = path.join(dir, 'cut');
  const child = spawn(process.execPath, [CASL, ...args(cut)], { cwd: REPO, stdio: 'ignore' });
  const ptr = path.join(cut, 'last-checkpoint.json');
  await new Promise<void>((resolve, reject) => {
    const poll = setInterval(() => {
      if (existsSync(ptr) && JSON.parse(readFileSync(ptr, 'utf8')).step >= 4) {
        clearInterval(poll);
        child.kill('SIGKILL');
        resolve();
      }
    }, 20);
    child.on('exit', () => {
      clearInterval(poll);
      reject(new Error('the run ended before it could be killed'));
    });
  });
  await new Promise((resolve) => child.on('exit', resolve));
  t.notOk(existsSync(path.join(cut, 'model')), 'killed before the end');
  const killedAt = JSON.parse(readFileSync(ptr, 'utf8')).step;
  t.ok(killedAt >= 4 && killedAt < 10, `killed after the checkpoint of step ${killedAt}`);
  const r2 = casl([...args(cut), '--resume']);
  t.equal(r2.status, 0, r2.stderr);
  t.match(r2.stderr, new RegExp(`resumed from .*step-0*${killedAt} at step ${killedAt}`));
  const a = readCheckpoint(path.join(full, 'model')).weights;
  const b = readCheckpoint(path.join(cut, 'model')).weights;
  let d = 0;
  for (const [k, x] of a) {
    const y = b.get(k)!.data;
    for (let i = 0; i < x.data.length; i++) d = Math.max(d, Math.abs(x.data[i] - y[i]));
  }
  t.ok(d <= 1e-6, `max weight difference ${d}`);
});
