import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UserError } from '@peftkit/core';
import { CharTokenizer } from './testing/char-tokenizer.js';
import { chatSegments, specialFrame, tokenizeRows, type TokenizeOptions } from './tokenize.js';
import { INSTRUCTION_TEMPLATES } from './templates.js';
import type { ShapeRow } from './shapes.js';

const M = -100;
const tok = new CharTokenizer();
const ids = (s: string) => [...s].map((c) => CharTokenizer.id(c));
const opts = (o: Partial<TokenizeOptions>): TokenizeOptions => ({ shape: 'text', tokenizer: tok, maxLength: 64, template: INSTRUCTION_TEMPLATES.plain, textTemplate: '{text}', ...o });
const arr = (a: Int32Array) => Array.from(a);

test('specialFrame finds what encode adds (nothing for GPT-2 style, BOS for Llama style)', () => {
  assert.deepEqual(specialFrame(tok), { prefix: [], suffix: [] });
  assert.deepEqual(specialFrame(new CharTokenizer({ bos: true })), { prefix: [3], suffix: [] });
});

test('text: every token a target, EOS appended; truncation at max_length is counted; empty rows dropped', () => {
  const rows: ShapeRow[] = [{ shape: 'text', text: 'ab' }, { shape: 'text', text: 'abcdef' }, { shape: 'text', text: '' }];
  const { examples, summary } = tokenizeRows(rows, opts({ maxLength: 4 }));
  assert.deepEqual(arr(examples[0].inputIds), [...ids('ab'), 0]);
  assert.deepEqual(arr(examples[0].labels), [...ids('ab'), 0]);
  assert.deepEqual(arr(examples[1].inputIds), ids('abcd'));
  assert.deepEqual(examples.map((e) => e.row), [0, 1]);
  assert.equal(summary.truncated, 1);
  assert.equal(summary.dropped, 1);
  assert.equal(summary.tokens, 7);
  assert.equal(summary.targetTokens, 7);
  assert.equal(summary.maxTokens, 4);
});

test('text packing: documents joined with EOS, cut in blocks of max_length, remainder dropped', () => {
  const rows: ShapeRow[] = ['abc', 'de', 'fghij'].map((text) => ({ shape: 'text', text }));
  const { examples, summary } = tokenizeRows(rows, opts({ maxLength: 4, packing: true }));
  const E = 0;
  const [a, b, c, d, e, f, g, h, i, j] = ids('abcdefghij');
  assert.deepEqual(examples.map((x) => arr(x.inputIds)), [[a, b, c, E], [d, e, E, f], [g, h, i, j]]);
  assert.deepEqual(examples.map((x) => arr(x.labels)), [[a, b, c, E], [d, e, E, f], [g, h, i, j]]);
  assert.equal(summary.packingRemainder, 1);
  assert.equal(summary.examples, 3);
  assert.equal(summary.truncated, 0);
  // Fewer tokens than one block: one short block rather than nothing.
  const short = tokenizeRows([{ shape: 'text', text: 'ab' }], opts({ maxLength: 8, packing: true }));
  assert.deepEqual(short.examples.map((x) => arr(x.inputIds)), [[a, b, E]]);
});

test('instruction: prompt tokens masked with -100, response + EOS are targets (exact positions)', () => {
  const rows: ShapeRow[] = [
    { shape: 'instruction', instruction: 'hi', input: '', output: 'ok' },
    { shape: 'instruction', instruction: 'hi', input: 'x', output: 'ok' },
  ];
  const { examples } = tokenizeRows(rows, opts({ shape: 'instruction' }));
  // plain template: "hi\n" without input, "hi\nx\n" with one
  assert.deepEqual(arr(examples[0].inputIds), [...ids('hi\nok'), 0]);
  assert.deepEqual(arr(examples[0].labels), [M, M, M, ...ids('ok'), 0]);
  assert.equal(examples[0].promptLength, 3);
  assert.deepEqual(arr(examples[1].labels), [M, M, M, M, M, ...ids('ok'), 0]);
  // A Llama-style tokenizer adds BOS in front, masked too.
  const bos = tokenizeRows(rows.slice(0, 1), opts({ shape: 'instruction', tokenizer: new CharTokenizer({ bos: true }) })).examples[0];
  assert.deepEqual(arr(bos.inputIds), [3, ...ids('hi\nok'), 0]);
  assert.deepEqual(arr(bos.labels), [M, M, M, M, ...ids('ok'), 0]);
});

test('instruction: the alpaca template, truncation into the response, and rows left without targets', () => {
  const row: ShapeRow = { shape: 'instruction', instruction: 'Add.', input: '', output: '42' };
  const prompt = 'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nAdd.\n\n### Response:\n';
  const full = tokenizeRows([row], opts({ shape: 'instruction', template: INSTRUCTION_TEMPLATES.alpaca, maxLength: 512 })).examples[0];
  assert.equal(full.promptLength, prompt.length);
  assert.deepEqual(arr(full.labels).slice(prompt.length), [...ids('42'), 0]);
  assert.ok(arr(full.labels).slice(0, prompt.length).every((l) => l === M));
  // Cut one token into the response: the "4" survives, "2" and EOS are cut.
  const cut = tokenizeRows([row], opts({ shape: 'instruction', template: INSTRUCTION_TEMPLATES.alpaca, maxLength: prompt.length + 1 }));
  assert.deepEqual(arr(cut.examples[0].labels).slice(prompt.length), ids('4'));
  assert.equal(cut.summary.truncated, 1);
  // Cut inside the prompt: no target left, so the row is dropped.
  const none = tokenizeRows([row], opts({ shape: 'instruction', template: INSTRUCTION_TEMPLATES.alpaca, maxLength: 10 }));
  assert.equal(none.examples.length, 0);
  assert.equal(none.summary.dropped, 1);
});

test('chat: only assistant turns (with their end-of-turn marker) are targets, at exact positions', () => {
  const messages = [
    { role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' },
    { role: 'user', content: 'x' }, { role: 'assistant', content: 'z' },
  ];
  const { examples } = tokenizeRows([{ shape: 'chat', messages }], opts({ shape: 'chat' }));
  const ex = examples[0];
  const rendered = tok.applyChatTemplate(messages);
  assert.deepEqual(arr(ex.inputIds), tok.encode(rendered));
  const targets = arr(ex.labels).flatMap((l, i) => (l === M ? [] : [i]));
  // <|im_start|>user\nhi<|im_end|>\n is 10 tokens, <|im_start|>assistant\n 11: "yo<|im_end|>\n" is 21..24;
  // then 9 + 11 more tokens: "z<|im_end|>\n" is 45..47.
  assert.deepEqual(targets, [21, 22, 23, 24, 45, 46, 47]);
  assert.deepEqual(targets.map((i) => ex.labels[i]), [...ids('yo'), 2, ...ids('\n'), ...ids('z'), 2, ...ids('\n')]);
  assert.equal(ex.inputIds.length, 48);
  assert.equal(ex.promptLength, 45); // the last assistant turn starts here
});

test('chat: a template that does not render growing prefixes falls back to the assistant contents', () => {
  // A template that puts a count of the messages first: renders of prefixes are not prefixes.
  const odd = new CharTokenizer();
  odd.applyChatTemplate = (ms, o = {}) => `${ms.length}|` + ms.map((m) => `${m.role}:${m.content};`).join('') + (o.addGenerationPrompt ? 'assistant:' : '');
  const segs = chatSegments(odd, [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'bc' }]);
  assert.deepEqual(segs, [{ text: '2|user:a;assistant:', target: false }, { text: 'bc', target: true }, { text: ';', target: false }]);
});

test('chat without a chat template is a UserError', () => {
  const plain = new CharTokenizer({ chat: false });
  assert.throws(() => tokenizeRows([{ shape: 'chat', messages: [{ role: 'assistant', content: 'a' }] }], opts({ shape: 'chat', tokenizer: plain })), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.match(e.message, /row 0: cannot render the conversation/);
    return true;
  });
});

test('classification: class ids, prompt only (no loss) without label words', () => {
  const rows: ShapeRow[] = [{ shape: 'classification', text: 'buy', label: 'spam' }, { shape: 'classification', text: 'hey', label: 0 }];
  const { examples, summary } = tokenizeRows(rows, opts({ shape: 'classification', labelNames: ['ham', 'spam'] }));
  assert.deepEqual(examples.map((e) => e.label), [1, 0]);
  assert.deepEqual(arr(examples[0].inputIds), ids('buy'));
  assert.ok(arr(examples[0].labels).every((l) => l === M));
  assert.equal(examples[0].promptLength, 3);
  assert.deepEqual(summary.labelCounts, { ham: 1, spam: 1 });
  assert.throws(() => tokenizeRows([{ shape: 'classification', text: 'a', label: 'eggs' }], opts({ shape: 'classification', labelNames: ['ham', 'spam'] })), /label "eggs" is not one of the labels \[ham, spam\]/);
});

test('classification with label words: the text is cut to fit, the template and the label word + EOS stay', () => {
  const rows: ShapeRow[] = [{ shape: 'classification', text: 'hello world', label: 'spam' }];
  const o = opts({ shape: 'classification', labelNames: ['ham', 'spam'], labelWords: [' ham', ' spam'], textTemplate: 'T:{text}\nL:', maxLength: 16 });
  // budget for the text: 16 - 2 ("T:") - 3 ("\nL:") - 5 (longest word " spam") - 1 (EOS) = 5 tokens
  const { examples, summary } = tokenizeRows(rows, o);
  const ex = examples[0];
  assert.deepEqual(arr(ex.inputIds), [...ids('T:hello\nL: spam'), 0]);
  assert.deepEqual(arr(ex.labels), [...new Array(10).fill(M), ...ids(' spam'), 0]);
  assert.equal(ex.promptLength, 10);
  assert.equal(ex.label, 1);
  assert.equal(summary.truncated, 1);
  assert.throws(() => tokenizeRows(rows, { ...o, maxLength: 11 }), (e: unknown) => e instanceof UserError && e.details.pointer === '/max_length');
});
