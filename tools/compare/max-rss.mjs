// Preloaded into a measured child (`node --import <this file> ...`): when the process exits it writes
// its peak resident set size, `process.resourceUsage().maxRSS` (KiB, getrusage's ru_maxrss), as JSON to
// the file named by $PEFTKIT_MAX_RSS_FILE. Plain JavaScript: it runs before tsx is registered.
import { renameSync, writeFileSync } from 'node:fs';

const out = process.env.PEFTKIT_MAX_RSS_FILE;
if (out) {
  process.on('exit', () => {
    try {
      const tmp = `${out}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify({ maxRSS_kib: process.resourceUsage().maxRSS, pid: process.pid }));
      renameSync(tmp, out); // atomic: the parent never reads half a file
    } catch {
      // The parent falls back to the VmHWM it polled.
    }
  });
}
