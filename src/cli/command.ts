// The shape of one `casl` command. Each command is a file in
// src/cli/commands/<name>.ts exporting `command`; main.ts finds it by name.
// Options are declared once here, with their types and help; their defaults
// live in `pipelines/<pipeline>.yaml` when the command has one (DESIGN.md:
// defaults are written once), otherwise in `default`.

export type OptionType = 'string' | 'number' | 'integer' | 'boolean' | 'string[]';

export interface OptionSpec {
  type: OptionType;
  help: string;
  default?: unknown;
  /** Allowed values, for string options. */
  choices?: readonly string[];
  /** One-letter alias, e.g. 'o' for --out. */
  short?: string;
}

export type Options = Record<string, unknown>;

export interface CommandContext {
  /** Where data goes (stdout unless a command writes a file). */
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
  /** The YAML file the defaults came from, if any. */
  configFile?: string;
}

export interface Command {
  name: string;
  summary: string;
  /** e.g. 'casl ingest <glob...> [--root DIR] [--shard i/N]' */
  usage: string;
  /** One runnable example, shown by `casl help <name>` and in the README. */
  example: string;
  /** Name of pipelines/<pipeline>.yaml holding this command's defaults. */
  pipeline?: string;
  options: Record<string, OptionSpec>;
  /** Returns the process exit code. */
  run(opts: Options, positionals: string[], ctx: CommandContext): Promise<number>;
}

/** An error the user can fix: printed as one clear message, no stack. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
