/**
 * Trains a byte-level BPE tokenizer (GPT-2 style, `<|endoftext|>` as BOS / EOS / PAD) on JSONL text
 * with HF's native `tokenizers`, and writes tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json, vocab.json and merges.txt. See docs/data.md.
 *
 *   node --conditions=peftkit-source --import tsx tools/train-tokenizer/index.ts --input data/corpus/train.jsonl --out data/tokenizer --vocab-size 4096
 */
import { Command, InvalidArgumentError } from 'commander';
import { trainTokenizer } from './train.js';

const int = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
};

const program = new Command('train-tokenizer')
  .description('Train a byte-level BPE tokenizer (GPT-2 style) on the "text" field of JSONL files')
  .option('--input <files...>', 'JSONL files to train on', ['data/corpus/train.jsonl'])
  .requiredOption('--out <dir>', 'output folder', 'data/tokenizer')
  .option('--vocab-size <n>', 'vocabulary size, <|endoftext|> included (257 to 30000)', int, 4096)
  .option('--text-field <name>', 'field holding the text', 'text')
  .option('--model-max-length <n>', 'model_max_length in tokenizer_config.json', int, 1024)
  .option('--force', 'retrain even when the output is up to date', false)
  .action(async (o: { input: string[]; out: string; vocabSize: number; textField: string; modelMaxLength: number; force: boolean }) => {
    await trainTokenizer({ ...o, log: (l) => console.log(l) });
  });

program.parseAsync().catch((e) => {
  console.error(`train-tokenizer: ${(e as Error).message}`);
  process.exit(1);
});
