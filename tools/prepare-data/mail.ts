/**
 * Turning a raw RFC 822 mail (as the SpamAssassin public corpus stores it) into clean text: headers
 * dropped except the Subject, MIME parts walked, quoted-printable and base64 decoded, HTML reduced
 * to text, whitespace normalised.
 *
 * Formats: RFC 5322 (headers, folding), RFC 2045 (transfer encodings), RFC 2046 (multipart),
 * RFC 2047 (encoded words in headers).
 */

/** A message split into its (lower-cased, unfolded) headers and its body. */
export interface MessageParts {
  headers: Map<string, string>;
  body: string;
}

/** Splits a message at its first empty line; skips an mbox `From ` line. Unfolds continuation lines. */
export function splitMessage(raw: string): MessageParts {
  const text = raw.replace(/\r\n/g, '\n');
  const cut = text.search(/\n[ \t]*\n/);
  let head = cut < 0 ? text : text.slice(0, cut);
  const body = cut < 0 ? '' : text.slice(text.indexOf('\n', cut + 1) + 1);
  head = head.replace(/^From [^\n]*\n/, '');
  const headers = new Map<string, string>();
  // A header block that does not look like headers (no "Name:" first line) is body.
  if (!/^[!-9;-~]+:/.test(head)) return { headers, body: text };
  for (const line of head.replace(/\n[ \t]+/g, ' ').split('\n')) {
    const m = /^([!-9;-~]+):\s*(.*)$/.exec(line);
    if (m && !headers.has(m[1].toLowerCase())) headers.set(m[1].toLowerCase(), m[2].trim());
  }
  return { headers, body };
}

/** Parses `type/subtype; key=value; key="value"` into the lower-cased type and its parameters. */
export function parseContentType(value: string | undefined): { type: string; params: Record<string, string> } {
  if (!value) return { type: '', params: {} };
  const [type, ...rest] = value.split(';');
  const params: Record<string, string> = {};
  for (const p of rest) {
    const m = /^\s*([\w.-]+)\s*=\s*(?:"([^"]*)"|([^\s;]*))/.exec(p);
    if (m) params[m[1].toLowerCase()] = m[2] ?? m[3];
  }
  return { type: type.trim().toLowerCase(), params };
}

const SINGLE_BYTE = /^(us-ascii|ascii|iso-8859-\d+|latin-?1|windows-125\d|cp125\d|koi8-[ru])$/;

// windows-1252's 0x80-0x9F (unassigned: U+FFFD). WHATWG decodes ASCII and latin-1 labels as
// windows-1252, but Node's TextDecoder maps those bytes to C1 controls, so this table does it.
const CP1252_HIGH = '€\ufffd‚ƒ„…†‡ˆ‰Š‹Œ\ufffdŽ\ufffd\ufffd‘’“”•–—˜™š›œ\ufffdžŸ';
const CP1252_LABELS = /^(us-ascii|ascii|iso-8859-1|iso8859-1|latin-?1|l1|windows-1252|cp1252|x-cp1252)$/;

/** Bytes to text in `charset`; ASCII and latin-1 labels (and unknown charsets) as windows-1252, as WHATWG does. */
export function decodeBytes(bytes: Uint8Array, charset = 'us-ascii'): string {
  const label = charset.toLowerCase().trim();
  if (!CP1252_LABELS.test(label)) {
    try {
      return new TextDecoder(label).decode(bytes);
    } catch {
      // unknown label: windows-1252 below
    }
  }
  let out = '';
  for (const b of bytes) out += b >= 0x80 && b < 0xa0 ? CP1252_HIGH[b - 0x80] : String.fromCharCode(b);
  return out;
}

/**
 * A decoded string's characters back to the bytes they stood for: the corpus was read as UTF-8,
 * so characters above U+00FF came from UTF-8 bytes; below, from single bytes of the part's charset.
 */
function toBytes(s: string, charset: string): number[] {
  const utf8 = !SINGLE_BYTE.test(charset.toLowerCase());
  const out: number[] = [];
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c < 0x80 || (!utf8 && c < 0x100)) out.push(c);
    else out.push(...Buffer.from(ch, 'utf8'));
  }
  return out;
}

/** Quoted-printable (RFC 2045 section 6.7): `=XX` bytes, `=` at a line end is a soft break. */
export function decodeQuotedPrintable(s: string, charset = 'us-ascii'): string {
  const bytes: number[] = [];
  const src = s.replace(/[ \t]+$/gm, '').replace(/=\r?\n/g, '');
  for (let i = 0; i < src.length; ) {
    if (src[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(src.slice(i + 1, i + 3))) {
      bytes.push(parseInt(src.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      const ch = String.fromCodePoint(src.codePointAt(i)!);
      bytes.push(...toBytes(ch, charset));
      i += ch.length;
    }
  }
  return decodeBytes(Uint8Array.from(bytes), charset);
}

/** Base64 (RFC 2045 section 6.8); characters outside the alphabet are ignored. */
export function decodeBase64(s: string, charset = 'us-ascii'): string {
  return decodeBytes(Buffer.from(s.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64'), charset);
}

/** RFC 2047 encoded words in a header (`=?utf-8?Q?caf=C3=A9?=`, `=?iso-8859-1?B?...?=`). */
export function decodeEncodedWords(value: string): string {
  return value
    .replace(/(=\?[^?]+\?[QqBb]\?[^?]*\?=)\s+(?==\?)/g, '$1')
    .replace(/=\?([^?*]+)(?:\*[^?]*)?\?([QqBb])\?([^?]*)\?=/g, (_, cs: string, enc: string, data: string) =>
      enc.toUpperCase() === 'B' ? decodeBase64(data, cs) : decodeQuotedPrintable(data.replace(/_/g, ' '), cs));
}

const ENTITIES: Record<string, string> = {
  nbsp: ' ', amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", copy: '©', reg: '®', trade: '™', mdash: '—', ndash: '–',
  hellip: '…', laquo: '«', raquo: '»', bull: '•', middot: '·', euro: '€', pound: '£', yen: '¥', cent: '¢', deg: '°',
  rsquo: '’', lsquo: '‘', rdquo: '”', ldquo: '“', times: '×', eacute: 'é', egrave: 'è', agrave: 'à', ccedil: 'ç', uuml: 'ü', ouml: 'ö', auml: 'ä', szlig: 'ß',
};

/** HTML entities to characters (named ones from a common list, all numeric ones); unknown ones stay. */
export function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);?/gi, (m, e: string) => {
    if (e[0] === '#') {
      const c = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return c > 0 && c < 0x110000 && !(c >= 0xd800 && c < 0xe000) ? String.fromCodePoint(c) : '';
    }
    return ENTITIES[e.toLowerCase()] ?? m;
  });
}

/** HTML to text: comments, scripts, styles and the head dropped, block ends as newlines, tags removed, entities decoded. */
export function htmlToText(html: string): string {
  return decodeEntities(
    html
      .replace(/<!--[\s\S]*?-->/g, ' ')
      .replace(/<(script|style|head|title)\b[\s\S]*?<\/\1\s*>/gi, ' ')
      .replace(/<br\s*\/?>|<\/(p|div|tr|li|h[1-6]|table|blockquote|pre)\s*>|<(p|li|tr)\b[^>]*>/gi, '\n')
      .replace(/<\/?[a-z!][^>]*>/gi, ' '),
  );
}

/** Number of common HTML tags (`<br>`, `</font>`, `<a href=...>`, ...) in a text. */
export function htmlTagCount(s: string): number {
  return s.match(/<\/?(html|body|head|table|tr|td|font|div|span|p|br|a|b|i|u|img|center|hr|li|ul|h[1-6])\b[^>]*>/gi)?.length ?? 0;
}

/** Looks like HTML even without a Content-Type saying so (spam often sends HTML as text/plain). */
export function looksLikeHtml(s: string): boolean {
  return htmlTagCount(s) >= 5 || (/<(html|body)\b/i.test(s) && htmlTagCount(s) >= 2);
}

/**
 * The readable text of a message body: a MIME walk that keeps text/plain parts (text/html ones
 * turned into text when no plain alternative exists) and skips attachments.
 */
export function bodyText(headers: Map<string, string>, body: string, depth = 0): string {
  const { type, params } = parseContentType(headers.get('content-type'));
  const charset = params.charset ?? 'us-ascii';
  if (type.startsWith('multipart/') && params.boundary && depth < 8) {
    const parts = splitMultipart(body, params.boundary).map((p) => splitMessage(p)).map((p) => ({ ...p, type: parseContentType(p.headers.get('content-type')).type || 'text/plain' }));
    if (type === 'multipart/alternative') {
      const pick = parts.find((p) => p.type === 'text/plain') ?? parts.find((p) => p.type === 'text/html') ?? parts[0];
      return pick ? bodyText(pick.headers, pick.body, depth + 1) : '';
    }
    return parts.map((p) => bodyText(p.headers, p.body, depth + 1)).filter((t) => t.trim() !== '').join('\n\n');
  }
  if (type === 'message/rfc822' && depth < 8) {
    const inner = splitMessage(body);
    return bodyText(inner.headers, inner.body, depth + 1);
  }
  if (type !== '' && !type.startsWith('text/')) return '';
  const cte = (headers.get('content-transfer-encoding') ?? '').toLowerCase();
  let text = body;
  if (cte === 'quoted-printable') text = decodeQuotedPrintable(body, charset);
  else if (cte === 'base64') text = decodeBase64(body, charset);
  return type === 'text/html' || looksLikeHtml(text) ? htmlToText(text) : text;
}

/** The parts of a multipart body (RFC 2046 section 5.1.1): between `--boundary` lines, before `--boundary--`. */
export function splitMultipart(body: string, boundary: string): string[] {
  const lines = body.replace(/\r\n/g, '\n').split('\n');
  const parts: string[] = [];
  let cur: string[] | null = null;
  for (const line of lines) {
    const t = line.trimEnd();
    if (t === `--${boundary}--`) {
      if (cur) parts.push(cur.join('\n'));
      return parts;
    }
    if (t === `--${boundary}`) {
      if (cur) parts.push(cur.join('\n'));
      cur = [];
    } else if (cur) cur.push(line);
  }
  if (cur) parts.push(cur.join('\n'));
  return parts;
}

/**
 * Whitespace normalised: CRLF to LF, control characters and U+FFFD (bytes the corpus could not
 * decode) removed, runs of spaces and tabs to one space, lines trimmed, at most one empty line in a row.
 */
export function normalizeWhitespace(s: string): string {
  return s
    .replace(/\r\n?/g, '\n')
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\ufffd]/g, '')
    .replace(/[ \t\u00a0\u2000-\u200b\u3000]+/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

/** At most `maxChars` characters, cut at the last whitespace before the limit when there is one in its last fifth. */
export function truncateText(s: string, maxChars: number): string {
  if (s.length <= maxChars) return s;
  const cut = s.slice(0, maxChars);
  const ws = Math.max(cut.lastIndexOf(' '), cut.lastIndexOf('\n'));
  return (ws > maxChars * 0.8 ? cut.slice(0, ws) : cut).trimEnd();
}

/** Longest subject kept, in characters. */
export const MAX_SUBJECT_CHARS = 200;

/** A cleaned mail: its subject and body text. */
export interface CleanMail {
  subject: string;
  body: string;
}

/** Cleans one raw mail: Subject kept (encoded words decoded), body decoded, HTML stripped, whitespace normalised, truncated. */
export function cleanMail(raw: string, maxChars: number): CleanMail {
  const { headers, body } = splitMessage(raw);
  const subject = truncateText(normalizeWhitespace(decodeEncodedWords(headers.get('subject') ?? '')).replace(/\n/g, ' '), MAX_SUBJECT_CHARS);
  return { subject, body: truncateText(normalizeWhitespace(bodyText(headers, body)), maxChars) };
}
