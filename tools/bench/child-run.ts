/** One benchmark case per child process, so that each measures its own WASM heap (it never shrinks). */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Runs the bench script at `scriptUrl` again, with this process's arguments and `envName=run` set,
 * and parses the last line it prints to standard output as its JSON result row.
 * @returns the row, or `failed` (the child's exit status or signal) when it printed none.
 */
export function runCaseInChild<R>(scriptUrl: string, envName: string, run: string): { row: R } | { failed: string } {
  const res = spawnSync(process.execPath, ['--conditions=peftkit-source', '--import', 'tsx', fileURLToPath(scriptUrl), ...process.argv.slice(2)], {
    env: { ...process.env, [envName]: run },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 24,
  });
  const last = res.stdout.trim().split('\n').pop() ?? '';
  try {
    return { row: JSON.parse(last) as R };
  } catch {
    return { failed: String(res.status ?? res.signal) };
  }
}
