// `casl <command> [options]`: finds src/cli/commands/<command>.ts, merges its
// pipeline defaults with the flags, and runs it. Data goes to stdout,
// progress and errors to stderr.
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { type Command, UsageError } from './command.js';
import { helpText, parseArgs } from './options.js';

const COMMANDS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'commands');

function commandNames(): string[] {
  return readdirSync(COMMANDS_DIR)
    .filter((f) => /\.(js|ts)$/.test(f) && !f.endsWith('.d.ts') && !f.endsWith('.map'))
    .map((f) => f.replace(/\.(js|ts)$/, ''))
    .sort();
}

async function loadCommand(name: string): Promise<Command | undefined> {
  if (!/^[a-z][a-z-]*$/.test(name) || !commandNames().includes(name)) return undefined;
  const ext = path.extname(fileURLToPath(import.meta.url));
  const mod = (await import(new URL(`./commands/${name}${ext}`, import.meta.url).href)) as { command: Command };
  return mod.command;
}

async function usage(): Promise<string> {
  const lines = ['usage: casl <command> [options]   (casl help <command> for its options)', '', 'commands:'];
  for (const name of commandNames()) {
    const cmd = await loadCommand(name);
    if (cmd) lines.push(`  ${name.padEnd(14)} ${cmd.summary}`);
  }
  return lines.join('\n') + '\n';
}

export async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') {
    process.stdout.write(await usage());
    return name ? 0 : 2;
  }
  if (name === 'help') {
    const cmd = rest[0] ? await loadCommand(rest[0]) : undefined;
    process.stdout.write(cmd ? helpText(cmd) : await usage());
    return 0;
  }
  const cmd = await loadCommand(name);
  if (!cmd) {
    process.stderr.write(`casl: unknown command '${name}'\n\n${await usage()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(helpText(cmd));
    return 0;
  }
  try {
    const { opts, positionals, configFile } = parseArgs(cmd, rest);
    return await cmd.run(opts, positionals, {
      stdout: process.stdout,
      stderr: process.stderr,
      stdin: process.stdin,
      configFile,
    });
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`casl ${name}: ${e.message}\n`);
      return 2;
    }
    // A closed downstream pipe (`casl ingest | head`) is a normal end.
    if ((e as NodeJS.ErrnoException).code === 'EPIPE') return 0;
    process.stderr.write(`casl ${name}: ${(e as Error).stack ?? e}\n`);
    return 1;
  }
}
