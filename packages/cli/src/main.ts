/** The `peftkit` command line. Run from source with `npm run peftkit -- <args>` or `npx peftkit <args>`. */
import { runCli } from './cli.js';

const code = await runCli(process.argv.slice(2), { handleSignals: true });
process.exitCode = code;
// Open handles (a backend's worker, a log file stream) must not keep a finished command alive.
setTimeout(() => process.exit(code), 2000).unref();
