import { dirname, join } from 'node:path';
import { generateFiles, logger, names, offsetFromRoot, readJson, type GeneratorCallback, type Tree } from '@nx/devkit';
import { compile } from 'json-schema-to-typescript';
import type { MethodGeneratorSchema } from './method.generated';

/** Versions written into the new package.json when the workspace does not tell (a fresh tree). */
const FALLBACK_VERSIONS = { core: '0.1.0', models: '0.1.0', tfjs: '4.22.0', inversify: '8.2.3' };

/** The generator's options with defaults applied and the names derived from `name`. */
export interface NormalizedMethodOptions extends Required<MethodGeneratorSchema> {
  packageName: string;
  /** Folder of the new package, relative to the workspace root (posix). */
  projectRoot: string;
}

/**
 * Applies the schema's defaults (Nx does too; this keeps direct calls from tests equal) and checks
 * the name.
 * @throws Error for a name that is not kebab-case.
 */
export function normalizeOptions(options: MethodGeneratorSchema): NormalizedMethodOptions {
  const o = { directory: 'plugins', scope: '@peftkit', description: 'A learned per-feature scale on the outputs of target linear layers (IA3-like).', ...options };
  if (!/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/.test(o.name)) throw new Error(`method name "${o.name}" must be kebab-case (lowercase letters and digits, words joined by "-"), e.g. "scaled-outputs"`);
  const directory = o.directory.replace(/\\/g, '/').replace(/^\.\/|\/+$/g, '');
  return { ...o, directory, packageName: o.scope ? `${o.scope}/${o.name}` : o.name, projectRoot: directory ? `${directory}/${o.name}` : o.name };
}

function versionOf(tree: Tree, pkgJson: string, fallback: string, dep?: string): string {
  if (!tree.exists(pkgJson)) return fallback;
  const pj = readJson(tree, pkgJson);
  return (dep ? (pj.dependencies?.[dep] ?? pj.devDependencies?.[dep]) : pj.version) ?? fallback;
}

/**
 * Writes `config.generated.ts` from `config.schema.json` with the same json-schema-to-typescript
 * options as tools/typegen, so that `npm run typegen:check` passes on the new package as generated.
 */
async function writeConfigType(tree: Tree, projectRoot: string): Promise<void> {
  const schemaPath = `${projectRoot}/src/config.schema.json`;
  const schema = readJson(tree, schemaPath);
  const ts = await compile(schema, schema.title ?? 'Settings', {
    bannerComment: `/* Generated from ${schemaPath} by tools/typegen. Do not edit: change the schema and run \`npm run typegen\`. */`,
    cwd: join(tree.root, projectRoot, 'src'),
    additionalProperties: false,
    style: { singleQuote: true, printWidth: 120 },
  });
  tree.write(`${projectRoot}/src/config.generated.ts`, ts);
}

/**
 * `nx g @peftkit/nx-plugin:method <name>`: scaffolds `<directory>/<name>/`, a peftkit plugin
 * package with the parts of the real plugins (config schema and generated type, config, layer,
 * model wiring, saved format, method, container module, test) and a minimal working adapter-layer
 * method (a learned per-feature output scale on target linear layers, IA3-like) written against
 * the public API of @peftkit/core and @peftkit/models. It saves (its own folder format, through the
 * handle's `save` hook), loads (`loadAdapter`, so `peftkit generate` / `classify` serve it) and
 * merges; `AUTHOR:` comments mark what an author changes.
 * @throws Error when the folder already exists.
 */
export async function methodGenerator(tree: Tree, options: MethodGeneratorSchema): Promise<GeneratorCallback> {
  const o = normalizeOptions(options);
  if (tree.exists(o.projectRoot)) throw new Error(`${o.projectRoot} already exists; choose another name or --directory`);
  const n = names(o.name);
  // From __filename: tsx's loader gives an ESM importer of this CommonJS file a `data:` __dirname.
  generateFiles(tree, join(dirname(__filename), 'files'), o.projectRoot, {
    ...o,
    className: n.className,
    propertyName: n.propertyName,
    fileName: n.fileName,
    // The scale's tensor name, after HF PEFT's `ia3_l`.
    paramName: `${n.constantName.toLowerCase()}_l`,
    jsonDescription: JSON.stringify(o.description).slice(1, -1),
    offset: offsetFromRoot(o.projectRoot),
    versions: {
      core: versionOf(tree, 'packages/core/package.json', FALLBACK_VERSIONS.core),
      models: versionOf(tree, 'packages/models/package.json', FALLBACK_VERSIONS.models),
      tfjs: versionOf(tree, 'package.json', FALLBACK_VERSIONS.tfjs, '@tensorflow/tfjs'),
      inversify: versionOf(tree, 'package.json', FALLBACK_VERSIONS.inversify, 'inversify'),
    },
    tmpl: '',
  });
  await writeConfigType(tree, o.projectRoot);
  return () => {
    logger.info(`Created ${o.packageName} in ${o.projectRoot}. Next:`);
    logger.info('  npm install                       # link the new workspace package into node_modules');
    logger.info(`  node tools/test.mjs ${o.projectRoot}/src`);
    logger.info(`  npx peftkit plugins               # lists the "${o.name}" method once linked`);
  };
}

export default methodGenerator;
