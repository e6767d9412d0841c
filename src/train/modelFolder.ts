/**
 * Which model folder a run uses: a path the user gives, checked to be a Hugging Face model
 * folder (config.json, tokenizer.json) before any engine starts, or `tiny`, the bundled tiny
 * policy, built and cached on first use.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";

export class ModelFolderError extends Error {
  override name = "ModelFolderError";
}

/** Whether a folder's config.json says its MoE experts are stored as MXFP4 (gpt-oss as published). */
export function hasMxfp4Experts(folder: string): boolean {
  try {
    const config = JSON.parse(readFileSync(join(folder, "config.json"), "utf8"));
    return config?.quantization_config?.quant_method === "mxfp4";
  } catch {
    return false;
  }
}

/** Throws a one-line ModelFolderError when `folder` is not a model folder. */
export function checkModelFolder(folder: string): string {
  const path = resolve(folder);
  if (!existsSync(path)) throw new ModelFolderError(`model folder not found: ${folder}`);
  if (!statSync(path).isDirectory())
    throw new ModelFolderError(`not a model folder (a file): ${folder}`);
  for (const file of ["config.json", "tokenizer.json"]) {
    if (!existsSync(join(path, file))) {
      throw new ModelFolderError(`not a model folder (no ${file}): ${folder}`);
    }
  }
  return path;
}
