// Learning-rate schedules as pure functions of the step, so a resumed run
// recomputes the same rate from the step alone. detectron2's conventions:
// a linear warm-up factor from `warmupFactor` to 1 over `warmupSteps`,
// multiplied by the decay: 'step' multiplies by gamma at each milestone,
// 'cosine' follows half a cosine from 1 to 0 over the whole run.

export interface ScheduleConfig {
  lr: number;
  kind: 'constant' | 'step' | 'cosine';
  totalSteps: number;
  warmupSteps: number;
  warmupFactor: number;
  /** Steps at which 'step' multiplies the rate by gamma. */
  milestones: number[];
  gamma: number;
}

/** The learning rate of (0-based) step `step`. */
export function learningRate(c: ScheduleConfig, step: number): number {
  let warm = 1;
  if (step < c.warmupSteps) {
    const a = step / c.warmupSteps;
    warm = c.warmupFactor * (1 - a) + a;
  }
  let decay = 1;
  if (c.kind === 'step') {
    for (const m of c.milestones) if (step >= m) decay *= c.gamma;
  } else if (c.kind === 'cosine') {
    decay = 0.5 * (1 + Math.cos((Math.PI * Math.min(step, c.totalSteps)) / c.totalSteps));
  }
  return c.lr * warm * decay;
}
