// @ts-check
// `nx release version` for the npm packages of this workspace, without @nx/js.
//
// nx's default version actions live in @nx/js, which this workspace does not install (the
// registry here has @nx/js only up to 23.3.1 and nx core is pinned to 23.2.1; see
// shared/reference/stack-notes.md). Versioning an npm package is small enough to do here: read
// and write "version" in package.json, and rewrite the ranges other workspace packages use for it
// in dependencies / peerDependencies / optionalDependencies / devDependencies.
//
// Wired up by nx.json's release.version.versionActions. CommonJS because nx `require`s it.
const { execFileSync } = require('node:child_process');
const { join } = require('node:path');
const { VersionActions } = require('nx/release');
// semver is nx's own dependency; resolve it from nx so that this file does not rely on hoisting.
const semver = require(require.resolve('semver', { paths: [require.resolve('nx/package.json')] }));

const COLLECTIONS = ['dependencies', 'peerDependencies', 'optionalDependencies', 'devDependencies'];

/** @param {import('nx/src/generators/tree').Tree} tree @param {string} path */
function readJson(tree, path) {
  const text = tree.read(path, 'utf-8');
  if (text == null) throw new Error(`${path} does not exist`);
  return JSON.parse(text);
}

/** @param {import('nx/src/generators/tree').Tree} tree @param {string} path @param {unknown} json */
function writeJson(tree, path, json) {
  tree.write(path, JSON.stringify(json, null, 2) + '\n');
}

/** The npm package name of a project (project names are package names here, but do not rely on it). */
function packageNameOf(projectGraph, projectName) {
  return projectGraph.nodes[projectName]?.data?.metadata?.js?.packageName ?? projectName;
}

/** `workspace:`, `file:`, `link:` and `portal:` ranges point at local folders, not registry versions. */
function isLocalProtocol(range) {
  return /^(workspace|file|link|portal):/.test(range);
}

class NpmPackageVersionActions extends VersionActions {
  validManifestFilenames = ['package.json'];

  /** @param {import('nx/src/generators/tree').Tree} tree */
  async readCurrentVersionFromSourceManifest(tree) {
    const manifestPath = join(this.projectGraphNode.data.root, 'package.json');
    const pkg = readJson(tree, manifestPath);
    if (typeof pkg.version !== 'string') throw new Error(`${manifestPath}: no "version" field; add one (e.g. "0.1.0")`);
    return { currentVersion: pkg.version, manifestPath };
  }

  /** Reading from the registry needs the network; nx.json sets currentVersionResolver to "disk". */
  async readCurrentVersionFromRegistry() {
    return null;
  }

  /**
   * The range this project's package.json gives a workspace dependency, and the field it is in.
   * @param {import('nx/src/generators/tree').Tree} tree
   * @param {import('nx/src/config/project-graph').ProjectGraph} projectGraph
   * @param {string} dependencyProjectName
   */
  async readCurrentVersionOfDependency(tree, projectGraph, dependencyProjectName) {
    const pkg = readJson(tree, join(this.projectGraphNode.data.root, 'package.json'));
    const name = packageNameOf(projectGraph, dependencyProjectName);
    for (const collection of COLLECTIONS) {
      const range = pkg[collection]?.[name];
      if (typeof range === 'string') return { currentVersion: range, dependencyCollection: collection };
    }
    return { currentVersion: null, dependencyCollection: null };
  }

  /** @param {import('nx/src/generators/tree').Tree} tree @param {string} newVersion */
  async updateProjectVersion(tree, newVersion) {
    const logs = [];
    for (const { manifestPath } of this.manifestsToUpdate) {
      const pkg = readJson(tree, manifestPath);
      pkg.version = newVersion;
      writeJson(tree, manifestPath, pkg);
      logs.push(`✍️  New version ${newVersion} written to manifest: ${manifestPath}`);
    }
    return logs;
  }

  /**
   * Rewrites the ranges of workspace dependencies that were versioned. A range that already admits
   * the new version (`^0.1.0` for 0.1.3) is left alone when preserveMatchingDependencyRanges is on
   * (nx's default), for the field kinds it names.
   * @param {import('nx/src/generators/tree').Tree} tree
   * @param {import('nx/src/config/project-graph').ProjectGraph} projectGraph
   * @param {Record<string, string>} dependenciesToUpdate project name → new range (prefix applied)
   */
  async updateProjectDependencies(tree, projectGraph, dependenciesToUpdate) {
    const preserve = this.finalConfigForProject.preserveMatchingDependencyRanges ?? true;
    const preserveIn = (collection) => (Array.isArray(preserve) ? preserve.includes(collection) : preserve);
    const logs = [];
    for (const { manifestPath, preserveLocalDependencyProtocols } of this.manifestsToUpdate) {
      const pkg = readJson(tree, manifestPath);
      let changed = 0;
      for (const [project, newRange] of Object.entries(dependenciesToUpdate)) {
        const name = packageNameOf(projectGraph, project);
        const newVersion = newRange.replace(/^[~^=]/, '');
        for (const collection of COLLECTIONS) {
          const current = pkg[collection]?.[name];
          if (typeof current !== 'string' || current === newRange) continue;
          if (preserveLocalDependencyProtocols && isLocalProtocol(current)) continue;
          if (preserveIn(collection) && /^[~^]/.test(current) && semver.validRange(current) && semver.satisfies(newVersion, current)) continue;
          pkg[collection][name] = newRange;
          changed++;
        }
      }
      if (changed) {
        writeJson(tree, manifestPath, pkg);
        logs.push(`✍️  Updated ${changed} ${changed === 1 ? 'dependency' : 'dependencies'} in manifest: ${manifestPath}`);
      }
    }
    return logs;
  }
}

/**
 * After every manifest was written: brings package-lock.json's copies of the workspace packages'
 * versions and ranges up to date (as @nx/js does), from the npm cache, without running scripts.
 * @type {import('nx/release').AfterAllProjectsVersioned}
 */
async function afterAllProjectsVersioned(cwd, { dryRun }) {
  if (dryRun) return { changedFiles: [], deletedFiles: [] };
  execFileSync('npm', ['install', '--package-lock-only', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund'], { cwd, stdio: 'inherit' });
  return { changedFiles: ['package-lock.json'], deletedFiles: [] };
}

module.exports = NpmPackageVersionActions;
module.exports.default = NpmPackageVersionActions;
module.exports.afterAllProjectsVersioned = afterAllProjectsVersioned;
