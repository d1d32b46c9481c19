/* Generated from packages/nx-plugin/src/generators/method/method.schema.json by tools/typegen. Do not edit: change the schema and run `npm run typegen`. */

/**
 * Options of `nx g @peftkit/nx-plugin:method <name>`: scaffolds <directory>/<name>/, a peftkit plugin package with a minimal working adapter-layer method (a learned per-feature scale on the outputs of target linear layers, IA3-like).
 */
export interface MethodGeneratorSchema {
  /**
   * The method's name: the value of `settings.method` in an inject step, the package folder name and the package name's last part (kebab-case, e.g. `scaled-outputs`).
   */
  name: string;
  /**
   * Workspace folder (relative to the root) that receives the plugin's folder; `plugins` is covered by the root package.json's npm workspaces.
   */
  directory?: string;
  /**
   * npm scope of the package name (`<scope>/<name>`); empty for an unscoped package.
   */
  scope?: string;
  /**
   * One-line description of the method, shown by `peftkit plugins` and in package.json.
   */
  description?: string;
}
