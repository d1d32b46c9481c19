import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bodyText, cleanMail, decodeEncodedWords, decodeQuotedPrintable, htmlToText, normalizeWhitespace, splitMessage, truncateText } from './mail.js';

test('headers are dropped except the Subject; folded headers unfolded; mbox From line skipped', () => {
  const raw = 'From a@b  Thu Aug 22 2002\nReturn-Path: <a@b>\nSubject: Hello\n  world\nTo: x@y\n\nBody line.\n';
  const { headers, body } = splitMessage(raw);
  assert.equal(headers.get('subject'), 'Hello world');
  assert.equal(headers.get('return-path'), '<a@b>');
  assert.equal(body, 'Body line.\n');
  assert.deepEqual(cleanMail(raw, 100), { subject: 'Hello world', body: 'Body line.' });
});

test('quoted-printable: =XX bytes in the part\'s charset, soft line breaks', () => {
  assert.equal(decodeQuotedPrintable('caf=C3=A9 au=\nlait =3D ok', 'utf-8'), 'café aulait = ok');
  assert.equal(decodeQuotedPrintable('caf=E9', 'iso-8859-1'), 'café');
  assert.equal(decodeQuotedPrintable('price =80 5', 'windows-1252'), 'price € 5');
});

test('RFC 2047 encoded words in the subject', () => {
  assert.equal(decodeEncodedWords('=?utf-8?Q?caf=C3=A9_time?= now'), 'café time now');
  assert.equal(decodeEncodedWords('=?iso-8859-1?B?Y2Fm6Q==?='), 'café');
});

test('HTML: tags, scripts, styles and comments removed, block ends as newlines, entities decoded', () => {
  const html = '<html><head><title>t</title><style>p{}</style></head><body><p>Buy&nbsp;now &amp; save</p><!-- x --><script>evil()</script>50&#37; off<br>today&#x21;</body></html>';
  assert.equal(normalizeWhitespace(htmlToText(html)), 'Buy now & save\n50% off\ntoday!');
});

test('MIME: multipart/alternative takes the plain part; base64 decoded; attachments skipped', () => {
  const headers = new Map([['content-type', 'multipart/mixed; boundary="XX"']]);
  const body = [
    'preamble', '--XX', 'Content-Type: multipart/alternative; boundary=YY', '',
    '--YY', 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: base64', '', Buffer.from('plain café').toString('base64'),
    '--YY', 'Content-Type: text/html', '', '<p>html</p>', '--YY--',
    '--XX', 'Content-Type: application/octet-stream', 'Content-Transfer-Encoding: base64', '', 'AAAA', '--XX--', 'epilogue',
  ].join('\n');
  assert.equal(normalizeWhitespace(bodyText(headers, body)), 'plain café');
  // text/plain that is really HTML (common in spam) is stripped too
  assert.equal(normalizeWhitespace(bodyText(new Map(), '<font>a</font><br><b>b</b><br><a href=x>c</a>')), 'a\nb\nc');
});

test('whitespace normalised and long bodies cut at a word boundary', () => {
  assert.equal(normalizeWhitespace(' a \t b\r\n\r\n\r\n\r\nc\u0007\ufffd  '), 'a b\n\nc');
  assert.equal(truncateText('aaaa bbbb cccc', 11), 'aaaa bbbb'); // a space in the last fifth
  assert.equal(truncateText('aaaa bbbb cccc', 12), 'aaaa bbbb cc'); // none: a hard cut
  assert.equal(truncateText('abcdefghij', 4), 'abcd');
  assert.equal(truncateText('short', 10), 'short');
});
