import type { PeftMethod, QuantScheme } from './method.js';
import type { StepKind } from './step.js';

/** A read-only view of everything the loaded plugins registered. */
export interface Registry {
  stepKinds(): StepKind[];
  methods(): PeftMethod[];
  quantSchemes(): QuantScheme[];
  stepKind(name: string): StepKind | undefined;
  method(name: string): PeftMethod | undefined;
  quantScheme(name: string): QuantScheme | undefined;
  /** Plugin packages loaded, with their versions. */
  plugins(): { name: string; version: string }[];
}
