/** A JSON Schema (draft-07) object, as plugins contribute them. Kept loose on purpose. */
export interface JSONSchema7 {
  [key: string]: any;
}
