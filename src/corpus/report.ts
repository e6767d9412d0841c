/**
 * The family quality report: programs of each family, drawn from seeds the corpus does not
 * use by default, each playing the same held-out games in the sandbox.
 */
import { KEY_PRESETS } from "../game/keys.ts";
import type { SandboxPool } from "../strategy/sandboxPool.ts";
import { FAMILIES, generateProgram, type Family } from "./corpus.ts";
import {
  gameSpecs,
  playTexts,
  summarizeQuality,
  type GameSetting,
  type Quality,
} from "./quality.ts";

export interface ReportOptions {
  setting: GameSetting;
  programsPerFamily: number;
  gamesPerProgram: number;
  /** Programs come from seeds programSeed, programSeed + 1, ... */
  programSeed: number;
  /** Games use seeds gameSeed, gameSeed + 1, ... */
  gameSeed: number;
}

export type FamilyReport = Record<Family, Quality>;

export async function familyReport(
  pool: SandboxPool,
  options: ReportOptions,
  onProgram?: () => void,
): Promise<FamilyReport> {
  const specs = gameSpecs(options.setting, options.gamesPerProgram, options.gameSeed);
  const keys = KEY_PRESETS[options.setting.keys];
  const entries = await Promise.all(
    FAMILIES.map(async (family) => {
      const texts = Array.from(
        { length: options.programsPerFamily },
        (_, i) => generateProgram(family, options.programSeed + i, keys).text,
      );
      return [family, summarizeQuality(await playTexts(pool, texts, specs, onProgram))] as const;
    }),
  );
  return Object.fromEntries(entries) as FamilyReport;
}
