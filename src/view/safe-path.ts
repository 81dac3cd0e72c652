// The viewer serves image files named by the JSONL, which may come from
// anywhere; only files that really live under --root may be read. A name is
// refused before touching the disk when it is absolute or has a '..' segment,
// and after resolving symlinks when its real path leaves the root's real path.
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';

export type Resolved = { ok: true; path: string } | { ok: false; status: 403 | 404; error: string };

/** Refusals that need no file system: absolute names, drive letters, '..' segments, NUL. */
export function lexicalRefusal(fileName: string): string | null {
  if (fileName === '') return 'empty file_name';
  if (fileName.includes('\0')) return 'file_name contains a NUL byte';
  if (path.posix.isAbsolute(fileName) || path.win32.isAbsolute(fileName) || /^[a-zA-Z]:/.test(fileName)) {
    return `file_name '${fileName}' is absolute; it must be relative to --root`;
  }
  if (fileName.split(/[\\/]/).includes('..')) return `file_name '${fileName}' has a '..' segment, which would leave --root`;
  return null;
}

/** `fileName` resolved under `rootReal` (the root's realpath), or why it is refused (403) or missing (404). */
export async function resolveUnderRoot(rootReal: string, fileName: string): Promise<Resolved> {
  const lexical = lexicalRefusal(fileName);
  if (lexical) return { ok: false, status: 403, error: lexical };
  let real: string;
  try {
    real = await realpath(path.join(rootReal, fileName));
  } catch {
    return { ok: false, status: 404, error: `file_name '${fileName}' not found under --root` };
  }
  if (real !== rootReal && !real.startsWith(rootReal.endsWith(path.sep) ? rootReal : rootReal + path.sep)) {
    return { ok: false, status: 403, error: `file_name '${fileName}' is a symlink out of --root` };
  }
  try {
    if (!(await stat(real)).isFile()) return { ok: false, status: 404, error: `file_name '${fileName}' is not a file` };
  } catch {
    return { ok: false, status: 404, error: `file_name '${fileName}' not found under --root` };
  }
  return { ok: true, path: real };
}
