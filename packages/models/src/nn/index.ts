export * from './module.js';
export * from './layers.js';
export * from './rng.js';
export * from './checkpoint.js';
