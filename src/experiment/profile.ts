// The experiment's profiles (pipelines/ca-ssl.yaml): typed, validated in one
// place, with errors naming the file, the profile and the key.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { Ajv } from 'ajv';
import { UsageError } from '../cli/command.js';
import { classesUsed, type ClassMix, DEFAULT_MIX } from '../fixtures/scene.js';
import { THING_CLASSES } from '../fixtures/shapes.js';

export interface Profile {
  name: string;
  seeds: number[];
  size: number;
  batchSize: number;
  labelerSteps: number;
  warmupSteps: number;
  finetuneSteps: number;
  delta: number;
  unlabeledShards: number;
  baselineLongSeeds: number[];
  sweepSteps: number;
  sweepDeltas: number[];
  sweepFractions: number[];
  galleryDeltas: number[];
  /** The fixtures' thing classes (casl fixtures --classes / --class-tail); default six, uniform. */
  mix: ClassMix;
  /**
   * Steps of a K-class detector on scenes of the other shapes (none of the
   * experiment's classes), whose backbone starts every model that otherwise
   * starts from scratch; 0: from scratch.
   */
  pretrainSteps: number;
  /** Labeled images of those other shapes. */
  pretrainImages: number;
}

const ints = { type: 'array', items: { type: 'integer' } };
const fractions = { type: 'array', items: { type: 'number', exclusiveMinimum: 0, maximum: 1 } };
const PROFILE_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['seeds', 'size', 'batch-size', 'labeler-steps', 'warmup-steps', 'finetune-steps', 'delta', 'unlabeled-shards',
    'baseline-long-seeds', 'sweep-steps', 'sweep-deltas', 'sweep-fractions', 'gallery-deltas'],
  properties: {
    seeds: { ...ints, minItems: 1 },
    size: { type: 'integer', minimum: 32, multipleOf: 32 },
    'batch-size': { type: 'integer', minimum: 1 },
    'labeler-steps': { type: 'integer', minimum: 1 },
    'warmup-steps': { type: 'integer', minimum: 1 },
    'finetune-steps': { type: 'integer', minimum: 1 },
    delta: { type: 'number', minimum: 0, exclusiveMaximum: 1 },
    'unlabeled-shards': { type: 'integer', minimum: 1 },
    'baseline-long-seeds': ints,
    'sweep-steps': { type: 'integer', minimum: 0 },
    'sweep-deltas': { type: 'array', items: { type: 'number', minimum: 0, exclusiveMaximum: 1 } },
    'sweep-fractions': fractions,
    'gallery-deltas': { type: 'array', items: { type: 'number', minimum: 0, exclusiveMaximum: 1 } },
    classes: { type: 'integer', minimum: 1, maximum: THING_CLASSES.length },
    'class-tail': { type: 'number', minimum: 0, maximum: 4 },
    'unlabeled-classes': { type: 'integer', minimum: 1, maximum: THING_CLASSES.length },
    'pretrain-steps': { type: 'integer', minimum: 0 },
    'pretrain-images': { type: 'integer', minimum: 1 },
  },
};

const ajv = new Ajv({ allErrors: true, strict: true });
const validateProfile = ajv.compile(PROFILE_SCHEMA);

/** The named profile of a ca-ssl.yaml file. */
export function loadProfile(file: string, name: string): Profile {
  let data: unknown;
  try {
    data = parseYaml(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`cannot read the experiment profiles ${file}: ${(e as Error).message}`);
  }
  const profiles = (data as { profiles?: Record<string, unknown> } | null)?.profiles;
  if (!profiles || typeof profiles !== 'object') throw new UsageError(`${file}: no 'profiles' mapping (profiles: {quick: …, full: …})`);
  const p = profiles[name];
  if (p === undefined) throw new UsageError(`${file}: no profile '${name}' (profiles: ${Object.keys(profiles).join(', ')}); choose one with --profile`);
  if (!validateProfile(p)) {
    const msgs = (validateProfile.errors ?? []).map((e) => {
      if (e.keyword === 'additionalProperties') return `unknown key '${(e.params as { additionalProperty: string }).additionalProperty}'`;
      if (e.keyword === 'required') return `key '${(e.params as { missingProperty: string }).missingProperty}' is missing`;
      return `key '${e.instancePath.replace(/^\//, '')}' ${e.message}`;
    });
    throw new UsageError(`${file}: profile '${name}': ${msgs.join('; ')}`);
  }
  const o = p as Record<string, unknown>;
  const profile: Profile = {
    name,
    seeds: o.seeds as number[],
    size: o.size as number,
    batchSize: o['batch-size'] as number,
    labelerSteps: o['labeler-steps'] as number,
    warmupSteps: o['warmup-steps'] as number,
    finetuneSteps: o['finetune-steps'] as number,
    delta: o.delta as number,
    unlabeledShards: o['unlabeled-shards'] as number,
    baselineLongSeeds: o['baseline-long-seeds'] as number[],
    sweepSteps: o['sweep-steps'] as number,
    sweepDeltas: o['sweep-deltas'] as number[],
    sweepFractions: o['sweep-fractions'] as number[],
    galleryDeltas: o['gallery-deltas'] as number[],
    mix: {
      count: (o.classes as number | undefined) ?? DEFAULT_MIX.count,
      tail: (o['class-tail'] as number | undefined) ?? DEFAULT_MIX.tail,
      unlabeled: o['unlabeled-classes'] as number | undefined,
    },
    pretrainSteps: (o['pretrain-steps'] as number | undefined) ?? 0,
    pretrainImages: (o['pretrain-images'] as number | undefined) ?? 2000,
  };
  for (const f of profile.sweepFractions) {
    if (!Number.isInteger(Math.round(1 / f)) || Math.abs(1 / f - Math.round(1 / f)) > 1e-9) {
      throw new UsageError(`${file}: profile '${name}': key 'sweep-fractions': ${f} is not 1/n (the subsets are image_id mod n = 0, nested: 1, 1/2, 1/4, …)`);
    }
  }
  if (profile.pretrainSteps > 0 && classesUsed(profile.mix) >= THING_CLASSES.length) {
    throw new UsageError(`${file}: profile '${name}': pretrain-steps needs shapes the experiment does not use, but its fixtures use all ${THING_CLASSES.length}`);
  }
  if (profile.sweepSteps > 0 && profile.sweepDeltas.length + profile.sweepFractions.length === 0) {
    throw new UsageError(`${file}: profile '${name}': sweep-steps is ${profile.sweepSteps} but sweep-deltas and sweep-fractions are empty`);
  }
  return profile;
}
