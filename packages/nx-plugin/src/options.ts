/** Options of the peftkit Nx plugin, set in nx.json: `{"plugin": "@peftkit/nx-plugin", "options": {...}}`. */
export interface PeftkitNxOptions {
  /** How targets invoke the CLI, from the workspace root (default `node packages/cli/bin/peftkit.js`). */
  peftkitCommand?: string;
  /** Add `test` and `build` targets to the workspace packages (default true). */
  packageTargets?: boolean;
}
