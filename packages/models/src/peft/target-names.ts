/**
 * How PEFT methods pick modules by name, as HF PEFT does (`peft/tuners/tuners_utils.py`
 * `check_target_module_exists`): shared by the method plugins so that `target_modules`,
 * `exclude_modules` and `modules_to_save` match the same modules in every method.
 */

/**
 * True when a list of names matches the dotted module name `key` as HF PEFT does: the whole name,
 * or its end after a dot (`c_proj` matches `transformer.h.0.attn.c_proj`, `proj` does not).
 */
export function matchesNameList(names: readonly string[], key: string): boolean {
  return names.some((t) => key === t || key.endsWith(`.${t}`));
}

/**
 * Python's `re.fullmatch(pattern, key)`: the regular expression must match the whole name.
 * @throws SyntaxError when `pattern` does not compile (check it when validating the config).
 */
export function fullMatch(pattern: string, key: string): boolean {
  return new RegExp(`^(?:${pattern})$`).test(key);
}
