/**
 * The `tiny` model: the bundled tiny policy (a small gpt-oss warm-started to write
 * strategies), built and cached by its own command.
 */
import type { TrainConfig } from "./config.ts";
import { ModelFolderError } from "./modelFolder.ts";

export async function resolveTinyPolicy(_config: TrainConfig): Promise<string> {
  throw new ModelFolderError("the tiny policy is not available yet: give --model DIR");
}
