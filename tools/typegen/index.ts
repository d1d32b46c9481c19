/**
 * Generates TypeScript types from every `*.schema.json` under packages/ and plugins/ with
 * json-schema-to-typescript, writing `<name>.generated.ts` beside each schema.
 *
 *   npm run typegen          write the files
 *   npm run typegen:check    exit 1 when a checked-in file differs from what the schema gives (CI)
 */
import { readdirSync, readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { compile } from 'json-schema-to-typescript';

const root = join(dirname(new URL(import.meta.url).pathname), '..', '..');
const check = process.argv.includes('--check');

function schemas(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name === 'files') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) schemas(p, out);
    else if (name.endsWith('.schema.json')) out.push(p);
  }
  return out;
}

let stale = 0;
for (const file of ['packages', 'plugins'].flatMap((d) => schemas(join(root, d))).sort()) {
  const schema = JSON.parse(readFileSync(file, 'utf8'));
  const ts = await compile(schema, schema.title ?? 'Settings', {
    bannerComment: `/* Generated from ${relative(root, file)} by tools/typegen. Do not edit: change the schema and run \`npm run typegen\`. */`,
    cwd: dirname(file),
    additionalProperties: false,
    style: { singleQuote: true, printWidth: 120 },
  });
  const target = file.replace(/\.schema\.json$/, '.generated.ts');
  if (check) {
    if (!existsSync(target) || readFileSync(target, 'utf8') !== ts) {
      console.error(`stale: ${relative(root, target)} does not match ${relative(root, file)}; run \`npm run typegen\``);
      stale++;
    }
  } else if (!existsSync(target) || readFileSync(target, 'utf8') !== ts) {
    writeFileSync(target, ts);
    console.log(`wrote ${relative(root, target)}`);
  }
}
if (stale) process.exit(1);
if (check) console.log('generated types are up to date');
