/* Generated from packages/steps/src/methods/full.schema.json by tools/typegen. Do not edit: change the schema and run `npm run typegen`. */

/**
 * Config of the built-in `full` method: every base parameter is trained (the baseline PEFT methods are compared with).
 */
export interface FullConfig {
  /**
   * Keep a host-memory copy of the base weights (4 bytes per parameter) so that the model can be switched back to the base (adapters disabled), e.g. for the evaluate step's with/without comparison. Off by default because it doubles the model's memory; without it, disabling the `full` adapter is an error.
   */
  keep_base_copy?: boolean;
}
