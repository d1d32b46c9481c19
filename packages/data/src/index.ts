/**
 * @peftkit/data: fine-tuning datasets on arquero tables. File formats (JSONL, JSON, CSV, Arrow),
 * data shapes (text, instruction, chat, classification), seeded splits, tokenization with label
 * masking and packing, and resumable batches.
 */
export * from './types.js';
export { FILE_FORMATS, type FileFormat, type LoadedTable, detectFormat, readTable, scanCsv } from './formats.js';
export { DEFAULT_COLUMNS, type ColumnNames, type ShapeRow, readRows } from './shapes.js';
export { INSTRUCTION_TEMPLATES, type InstructionTemplate, resolveInstructionTemplate, renderInstructionPrompt, splitTextTemplate, fill } from './templates.js';
export { type TokenizeOptions, type SpecialFrame, specialFrame, padIdOf, labelList, labelId, chatSegments, tokenizeRows } from './tokenize.js';
export { type SplitFractions, allocate, splitIndices, sampleIndices } from './split.js';
export { createBatchIterator } from './batches.js';
export { type BuildDatasetOptions, buildDataset, formatSummary, takeRows } from './build.js';
export { mulberry32, deriveSeed, shuffleInPlace, permutation } from './random.js';
