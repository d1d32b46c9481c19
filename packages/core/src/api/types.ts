/**
 * inversify service identifiers of the plugin API: one Symbol per extension point, each with an
 * interface of the same role ({@link StepKind}, {@link PeftMethod}, {@link QuantScheme}).
 *
 * A plugin binds its contributions with `bind(TYPES.PeftMethod).toConstantValue(method)` inside
 * the one `ContainerModule` its package exports as `default`.
 */
export const TYPES = {
  StepKind: Symbol.for('peftkit.StepKind'),
  PeftMethod: Symbol.for('peftkit.PeftMethod'),
  QuantScheme: Symbol.for('peftkit.QuantScheme'),
} as const;
