/**
 * Transitional re-export: errors live in the layer-neutral src/errors.ts. Only
 * src/audit/writer.ts still imports this path (it is being edited for performance in
 * parallel); point it at '../errors.js' and delete this file. test/unit/layers.test.ts
 * lists that one import as the only allowed exception and fails once it is gone, so the
 * exception cannot outlive it.
 */
export { AppError, errors } from '../errors.js';
