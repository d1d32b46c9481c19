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
