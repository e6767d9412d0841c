/**
 * `rl2048 corpus`: writes a seeded corpus of Python 2048 strategies as JSONL
 * (one `{family, params, text}` per line).
 */
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { Command } from "commander";
import { z } from "zod";
import { generateCorpus } from "../corpus/corpus.ts";
import { KEY_PRESETS } from "../corpus/python.ts";
import { UserError } from "./userError.ts";

const Options = z.object({
  n: z.coerce.number().int().positive(),
  out: z.string().min(1),
  seed: z.coerce.number().int(),
  keys: z.enum(["bepo", "wasd"]),
});

export function corpusCommand(): Command {
  return new Command("corpus")
    .description("Generate a seeded corpus of Python 2048 strategies (JSONL: family, params, text)")
    .requiredOption("--n <count>", "number of programs")
    .requiredOption("--out <file>", "JSONL file to write")
    .option("--seed <seed>", "random seed", "0")
    .option("--keys <preset>", "move keys the programs answer with: bepo or wasd", "bepo")
    .action((raw: Record<string, string>) => {
      const parsed = Options.safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        throw new UserError(`--${issue.path.join(".")}: ${issue.message}`);
      }
      const { n, out, seed, keys } = parsed.data;
      const records = generateCorpus({ n, seed, keys: KEY_PRESETS[keys] });
      mkdirSync(dirname(out), { recursive: true });
      const temp = `${out}.tmp-${process.pid}`;
      writeFileSync(temp, records.map((r) => JSON.stringify(r)).join("\n") + "\n");
      renameSync(temp, out);
      const counts = new Map<string, number>();
      for (const r of records) counts.set(r.family, (counts.get(r.family) ?? 0) + 1);
      const summary = [...counts].map(([family, count]) => `${family} ${count}`).join(", ");
      console.log(`wrote ${n} programs to ${out} (${summary})`);
    });
}
