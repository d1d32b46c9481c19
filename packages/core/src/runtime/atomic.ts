import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join, basename } from 'node:path';

/**
 * Writes a file atomically: the bytes go to a temporary file in the same folder, are flushed to
 * disk, then renamed over the target. A crash leaves either the old file or the new one, never a
 * partial one. Parent folders are created.
 *
 * `data` is the whole content (a string is written as UTF-8) or chunks, written in order as they are
 * produced, so that a large file (e.g. safetensors, tensor by tensor) is never assembled in one buffer.
 * Whatever the chunks throw removes the temporary file and is rethrown; the target is untouched.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array | Iterable<Uint8Array>): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    const chunks: Iterable<Uint8Array> = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : ArrayBuffer.isView(data) ? [data] : data;
    for (const buf of chunks) {
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

/** {@link writeFileAtomic} of `JSON.stringify(value, null, 2)` plus a newline. */
export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

/**
 * Flushes a folder's entries (the files created or renamed in it) to disk, so that a rename made
 * for atomicity survives a crash. A no-op where folders cannot be opened (e.g. Windows): the
 * renames are still atomic there, only not yet durable.
 */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    /* folders cannot be opened or synced on this platform */
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
