/** @peftkit/cli: the `peftkit` command line, also callable in-process. */
export { runCli, EXIT_INTERRUPTED, type CliOptions } from './cli.js';
export { loadBuiltins, loadPlugins, BUILTIN_PLUGIN, BUILTINS_ENV, type FailedPlugin, type PluginLoadOptions } from './plugin-loading.js';
export { describeRegistry, formatRegistry, formatPlan, fieldsOf, typeOf, type PluginsReport, type FieldInfo } from './describe.js';
