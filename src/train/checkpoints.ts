/**
 * Checkpoint folders: `<run>/checkpoint-<step>/` holds the engine's checkpoint (adapter,
 * optimizer, scheduler, engine RNG), `trainer_state.json` (step, data position, TS RNG,
 * config, best so far) and, with training.one_step_off_policy, `pending_batch.json` (the batch
 * sampled for the next update). A checkpoint is written into a temporary folder and renamed, so a crash
 * never leaves half of one; a folder without trainer_state.json is never taken for one.
 */
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { z } from "zod";

export const TRAINER_STATE = "trainer_state.json";
/** The batch sampled ahead of the next update (training.one_step_off_policy), not yet trained on. */
export const PENDING_BATCH = "pending_batch.json";
const CHECKPOINT = /^checkpoint-(\d+)$/;
const TEMP_PREFIX = ".tmp-checkpoint-";

export const bestStrategySchema = z.object({
  step: z.int(),
  reward: z.number(),
  code: z.string(),
  outcome: z.string().nullable(),
  rewards: z.record(z.string(), z.number()),
});
export type BestStrategy = z.infer<typeof bestStrategySchema>;

export const trainerStateSchema = z.object({
  version: z.literal(1),
  run_name: z.string(),
  /** Optimizer steps done. */
  step: z.int().min(0),
  /** Prompts consumed so far (the data position). */
  data_position: z.int().min(0),
  /** The TS-side generator's state (pure-rand xoroshiro128+). */
  rng_state: z.array(z.number()),
  /** The run's full config, as parsed. */
  config: z.record(z.string(), z.unknown()),
  best: bestStrategySchema.nullable(),
});
export type TrainerState = z.infer<typeof trainerStateSchema>;

const pendingBatchSchema = z.array(
  z.object({
    prompt: z.array(z.int()),
    ids: z.array(z.int()),
    logprobs: z.array(z.number()),
    truncated: z.boolean(),
    seeds: z.array(z.int()),
    /** Under the policy that sampled it, as the training forward sees it. */
    old_logprobs: z.array(z.number()),
  }),
);
export type PendingBatch = z.infer<typeof pendingBatchSchema>;

export interface CheckpointRef {
  step: number;
  path: string;
}

/** Complete checkpoints in a run folder, oldest first. */
export function listCheckpoints(runDir: string): CheckpointRef[] {
  if (!existsSync(runDir)) return [];
  return readdirSync(runDir)
    .map((name) => ({ match: CHECKPOINT.exec(name), path: join(runDir, name) }))
    .filter(({ match, path }) => match && existsSync(join(path, TRAINER_STATE)))
    .map(({ match, path }) => ({ step: Number(match![1]), path }))
    .sort((a, b) => a.step - b.step);
}

/** Removes temporary folders left by a save that was interrupted. */
export function removeStaleTemps(runDir: string): void {
  if (!existsSync(runDir)) return;
  for (const name of readdirSync(runDir)) {
    if (name.startsWith(TEMP_PREFIX)) rmSync(join(runDir, name), { recursive: true, force: true });
  }
}

/**
 * Writes checkpoint-<step> atomically: `writeContents` fills a temporary folder (the engine's
 * `save`), then trainer_state.json is added and the folder renamed into place.
 */
export async function saveCheckpoint(
  runDir: string,
  state: TrainerState,
  writeContents: (tempDir: string) => Promise<void>,
): Promise<string> {
  mkdirSync(runDir, { recursive: true });
  const temp = join(runDir, `${TEMP_PREFIX}${state.step}-${process.pid}`);
  rmSync(temp, { recursive: true, force: true });
  mkdirSync(temp);
  try {
    await writeContents(temp);
    writeFileSync(join(temp, TRAINER_STATE), JSON.stringify(state, null, 2) + "\n");
  } catch (err) {
    rmSync(temp, { recursive: true, force: true });
    throw err;
  }
  const final = join(runDir, `checkpoint-${state.step}`);
  if (existsSync(final)) {
    // The same step saved again after a resume: swap, then drop the old one.
    const old = `${temp}-old`;
    renameSync(final, old);
    renameSync(temp, final);
    rmSync(old, { recursive: true, force: true });
  } else {
    renameSync(temp, final);
  }
  return final;
}

/** Keeps the newest `keep` checkpoints (null keeps all). */
export function pruneCheckpoints(runDir: string, keep: number | null): void {
  if (keep === null) return;
  const all = listCheckpoints(runDir);
  for (const old of all.slice(0, Math.max(0, all.length - keep))) {
    rmSync(old.path, { recursive: true, force: true });
  }
}

export function readTrainerState(checkpoint: string): TrainerState {
  const path = join(checkpoint, TRAINER_STATE);
  return readChecked(
    path,
    trainerStateSchema,
    `${checkpoint} is not a checkpoint (no readable ${TRAINER_STATE})`,
  );
}

export function writePendingBatch(checkpoint: string, batch: PendingBatch): void {
  writeFileSync(join(checkpoint, PENDING_BATCH), JSON.stringify(batch) + "\n");
}

/** The checkpoint's pending batch, or null when it has none. */
export function readPendingBatch(checkpoint: string): PendingBatch | null {
  const path = join(checkpoint, PENDING_BATCH);
  if (!existsSync(path)) return null;
  return readChecked(path, pendingBatchSchema, `${path} is not readable JSON`);
}

/** A JSON file checked against its schema; what is wrong is named in one line. */
function readChecked<T>(path: string, schema: z.ZodType<T>, unreadable: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch {
    throw new Error(unreadable);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`${path}: ${issue.path.join(".")}: ${issue.message}`);
  }
  return parsed.data;
}

/**
 * The checkpoint `--resume` means: `latest` is the newest checkpoint of `runName` under
 * outputDir when a run is named, else of the most recently written run; a PATH is a checkpoint
 * folder or a run folder (its newest checkpoint).
 */
export function resolveResume(
  target: string,
  outputDir: string,
  runName: string | null,
): CheckpointRef {
  if (target !== "latest") {
    const path = resolve(target);
    if (existsSync(join(path, TRAINER_STATE))) {
      const state = readTrainerState(path);
      return { step: state.step, path };
    }
    const newest = listCheckpoints(path).at(-1);
    if (!newest) throw new Error(`--resume ${target}: no checkpoint there`);
    return newest;
  }
  const runs = runName
    ? [join(outputDir, runName)]
    : existsSync(outputDir)
      ? readdirSync(outputDir).map((name) => join(outputDir, name))
      : [];
  const candidates = runs
    .map((run) => listCheckpoints(run).at(-1))
    .filter((c): c is CheckpointRef => c !== undefined)
    .sort(
      (a, b) =>
        statSync(join(b.path, TRAINER_STATE)).mtimeMs -
        statSync(join(a.path, TRAINER_STATE)).mtimeMs,
    );
  const latest = candidates[0];
  if (!latest) {
    throw new Error(
      `--resume latest: no checkpoint under ${runName ? join(outputDir, runName) : outputDir}`,
    );
  }
  return latest;
}
