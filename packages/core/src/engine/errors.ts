/** One problem found in a pipeline file, located by file and JSON pointer (RFC 6901). */
export interface PipelineIssue {
  file: string;
  /** JSON pointer of the offending field, `""` for the whole document. */
  pointer: string;
  message: string;
  /** What to do about it. */
  hint?: string;
}

/** Formats an issue as one line: `file: /pointer: message (hint: ...)`. */
export function formatIssue(issue: PipelineIssue): string {
  const where = `${issue.file}: ${issue.pointer === '' ? '(document)' : issue.pointer}`;
  return `${where}: ${issue.message}${issue.hint ? `\n  hint: ${issue.hint}` : ''}`;
}

/**
 * Thrown when a pipeline is invalid. Carries every issue found; the CLI prints them and exits 1.
 */
export class PipelineValidationError extends Error {
  constructor(readonly issues: PipelineIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.name = 'PipelineValidationError';
  }
}

/**
 * An error a user can act on (bad input file, missing folder): the CLI prints its message without
 * a stack trace. `file` and `pointer` locate the cause where known.
 */
export class UserError extends Error {
  constructor(
    message: string,
    readonly details: { file?: string; pointer?: string; hint?: string } = {},
  ) {
    super(message);
    this.name = 'UserError';
  }
}

/** Escapes one reference token of a JSON pointer (RFC 6901 section 4). */
export function pointerToken(token: string | number): string {
  return String(token).replace(/~/g, '~0').replace(/\//g, '~1');
}

/** Joins tokens into a JSON pointer: `pointer('steps', 'a/b')` is `/steps/a~1b`. */
export function pointer(...tokens: (string | number)[]): string {
  return tokens.map((t) => '/' + pointerToken(t)).join('');
}

/**
 * Places an error a step threw in the pipeline file: the result names `file` and a JSON pointer
 * into it. A pointer that starts with `/steps/` is kept; any other is relative to the step's
 * `settings` (as a step kind's settings issues are); none, or one into another file, points at
 * the step itself. A message that
 * starts with its own pointer loses that prefix (the CLI prints the pointer in front).
 * Errors that are not {@link UserError}s are returned as they are: they are bugs, with a stack.
 */
export function locateInStep(e: unknown, file: string, step: string): unknown {
  if (!(e instanceof UserError) || e.details.file === file) return e;
  // A pointer into another file (a model's config.json) says nothing about where in the pipeline.
  const given = e.details.file ? undefined : e.details.pointer;
  const at = given?.startsWith('/steps/') ? given : given ? pointer('steps', step, 'settings') + given : pointer('steps', step);
  let message = e.message;
  for (const prefix of [`${at}: `, given ? `${given}: ` : undefined]) if (prefix && message.startsWith(prefix)) message = message.slice(prefix.length);
  const located = new UserError(message, { file, pointer: at, hint: e.details.hint });
  located.cause = e;
  return located;
}
