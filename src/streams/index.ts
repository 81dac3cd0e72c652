// casl's stream operators: each a function from a highland stream to a
// highland stream, composed with `.through(...)`, backpressure kept end to
// end, error records carried beside the good ones until routeErrors.
export { type Stage, type Stream, type OrError, errorFrom, isErrorRecord } from './stage.js';
export { parseJsonl, serializeJsonl, readJsonl, type ParseJsonlOptions, DEFAULT_MAX_LINE_BYTES } from './jsonl.js';
export { writeTo, type WriteResult } from './sink.js';
export { batch, unbatch } from './batch.js';
export { orderedMap, type OrderedMapOptions } from './ordered-map.js';
export { mapOk, routeErrors, errorSink, type ErrorSink, RunSummary } from './errors.js';
export { progress, type Progress, type ProgressOptions, type ProgressState } from './progress.js';
export { finishRun, type RunOutputOptions, type RunOutcome } from './run.js';
