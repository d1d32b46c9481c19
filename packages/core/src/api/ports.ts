/**
 * Port types: what flows along the edges of a pipeline graph.
 *
 * A step kind declares, for each input, the port types it accepts and, for each output, the one it
 * produces. The engine checks every edge against these before any step runs.
 */
export const PORT_TYPES = [
  /** A model as loaded from a checkpoint, full precision, nothing injected. */
  'base-model',
  /** A base model whose linear layers are stored quantized (e.g. NF4). */
  'quantized-model',
  /** A model with a PEFT method injected (or `full`: every parameter trainable). */
  'peft-model',
  /** Tokenized splits ready for training and evaluation. */
  'dataset',
  /** A table of metrics. */
  'metrics',
  /** Files written to disk (an adapter folder, a checkpoint, a report). */
  'artifact',
] as const;

/** One of {@link PORT_TYPES}. */
export type PortType = (typeof PORT_TYPES)[number];

/** An input port: the port types it accepts, and whether the step runs without it. */
export interface InputPort {
  accepts: readonly PortType[];
  optional?: boolean;
  description?: string;
}

/** An output port: the single port type it produces. */
export interface OutputPort {
  type: PortType;
  description?: string;
}
