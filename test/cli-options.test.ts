import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Command } from '../src/cli/command.js';
import { parseArgs } from '../src/cli/options.js';

const cmd: Command = {
  name: 'demo',
  summary: 'demo',
  usage: 'casl demo',
  example: 'casl demo --delta 0.5',
  options: {
    delta: { type: 'number', help: 'threshold', default: 0.5 },
    batch: { type: 'integer', help: 'batch size', default: 8 },
    aug: { type: 'string', help: 'augmentation', choices: ['none', 'weak', 'strong'], default: 'none' },
    quiet: { type: 'boolean', help: 'no progress', default: false },
    out: { type: 'string', help: 'output', short: 'o' },
  },
  run: async () => 0,
};

t.test('defaults, then YAML, then flags', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'casl-opts-'));
  const file = path.join(dir, 'c.yaml');
  writeFileSync(file, 'delta: 0.3\nbatch: 4\n');
  const { opts, positionals } = parseArgs(cmd, ['--config', file, '--batch=16', 'a.jpg', '-o', 'x.jsonl', '--quiet']);
  t.same(opts, { delta: 0.3, batch: 16, aug: 'none', quiet: true, out: 'x.jsonl' });
  t.same(positionals, ['a.jpg']);
});

t.test('unknown keys and wrong types name the key and the file', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'casl-opts-'));
  const file = path.join(dir, 'bad.yaml');
  writeFileSync(file, 'delta: high\nbatchsize: 4\n');
  t.throws(() => parseArgs(cmd, ['--config', file]), /bad\.yaml: .*unknown key 'batchsize'/);
  t.throws(() => parseArgs(cmd, ['--config', file]), /key 'delta' must be number/);
  t.throws(() => parseArgs(cmd, ['--batch', '2.5']), /--batch takes an integer/);
  t.throws(() => parseArgs(cmd, ['--aug', 'medium']), /--aug must be one of none\|weak\|strong/);
  t.throws(() => parseArgs(cmd, ['--nope']), /unknown flag --nope/);
  t.throws(() => parseArgs(cmd, ['--out']), /--out needs a value/);
});
