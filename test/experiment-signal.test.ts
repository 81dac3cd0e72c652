// casl experiment killed (SIGTERM, or SIGINT from a terminal): its running
// stage processes stop with it instead of training on orphaned, and it says
// how to resume.
import t from 'tap';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from '../src/cli/options.js';

function stageProcesses(dir: string): string[] {
  try {
    return execFileSync('pgrep', ['-f', dir], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`${signal}: no stage process outlives casl experiment`, async (t) => {
    const out = mkdtempSync(path.join(tmpdir(), 'casl-exp-sig-'));
    t.teardown(() => rmSync(out, { recursive: true, force: true }));
    const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin/casl.js'), 'experiment', '--profile', 'smoke',
      '--fixtures', path.join(PROJECT_ROOT, 'fixtures/sample'), '--out', out, '--jobs', '2'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    const running = new Promise<void>((resolve) => child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
      if (/labeler-k: running in/.test(stderr)) resolve();
    }));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await running;
    // Both labelers are casl train processes now, their command lines naming the out directory (as the experiment's own does).
    await new Promise((r) => setTimeout(r, 300));
    t.equal(stageProcesses(out).filter((pid) => pid !== String(child.pid)).length, 2, 'two stage processes running');
    child.kill(signal);
    t.equal(await exited, signal === 'SIGINT' ? 130 : 143);
    t.match(stderr, new RegExp(`${signal}: stopped 2 running stages; run the same command again to resume them`));
    await new Promise((r) => setTimeout(r, 500));
    t.same(stageProcesses(out), [], 'none left');
  });
}
