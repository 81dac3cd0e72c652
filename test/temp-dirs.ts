// Temporary directories for a test file, removed when its tap test ends.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** A maker of fresh directories under the OS temp dir; all are deleted at `t`'s teardown. */
export function tempDirs(t: { teardown(fn: () => void): void }): (prefix: string) => string {
  const made: string[] = [];
  t.teardown(() => made.forEach((d) => rmSync(d, { recursive: true, force: true })));
  return (prefix) => {
    const d = mkdtempSync(path.join(tmpdir(), prefix));
    made.push(d);
    return d;
  };
}
