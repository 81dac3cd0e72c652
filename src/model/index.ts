// The detector's public API, for training, pseudo-labelling and benchmarks.
// Tensors: images [B, S, S, 3] in [0, 1]; outputs cls [B, L, K], box [B, L, 4]
// (ltrb pixels), ctr [B, L, 1]; boxes x1y1x2y2 in pixels unless said otherwise.
export { type ModelConfig, type InferenceConfig, TINY_FCOS, PRESETS, modelConfig, validateModelConfig, levelSizes } from './config.js';
export { type Detector, type DetectorOutput, createDetector, disposeDetector, forward, disposeOutput, countParams, paramSpecs } from './detector.js';
export { type Part, PARTS } from './params.js';
export { type Points, makePoints } from './points.js';
export { type GtInstances, type Targets, fcosTargets } from './targets.js';
export { type LossTerms, fcosLoss } from './loss.js';
export { type Detections, type Letterbox, postprocess, toOriginal, nms } from './postprocess.js';
export { type View, predict, toInstances } from './predict.js';
export { type OptimizerConfig, type OptimizerState, Optimizer, SGD_DEFAULTS, ADAMW_DEFAULTS } from './optim.js';
export { type Batch, type StepResult, type StepOptions, trainStep, lossAndGrads } from './train-step.js';
export {
  type Checkpoint, type CheckpointManifest, type PartialInit, type SaveOptions, type Stage,
  saveCheckpoint, readCheckpoint, loadDetector, loadWeightsInto, loadOptimizerInto, initFromCheckpoint,
} from './checkpoint.js';
export { loadTorchWeights } from './torch-import.js';
export { enableGradients } from './gradients.js';
