/**
 * Builds the sandbox process's code (sandboxHost, sandboxWorker, the game and the Python
 * sources) into two plain ESM files, so that process runs on bare node with no loader, no
 * environment and read access to nothing but these files and Pyodide.
 *
 * Output goes to node_modules/.cache/rl2048-sandbox/<content hash>/, written through a
 * temporary folder and a rename, so concurrent starts never see half a bundle.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..");

export interface SandboxBundle {
  dir: string;
  host: string;
}

export async function bundleSandbox(): Promise<SandboxBundle> {
  const out = await build({
    entryPoints: {
      sandboxHost: join(HERE, "sandboxHost.ts"),
      sandboxWorker: join(HERE, "sandboxWorker.ts"),
    },
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    outdir: "/",
    outExtension: { ".js": ".mjs" },
    loader: { ".py": "text" },
    external: ["pyodide"],
    write: false,
    logLevel: "silent",
  });
  const hash = createHash("sha256");
  for (const f of out.outputFiles) hash.update(f.path).update(f.contents);
  const dir = join(
    ROOT,
    "node_modules",
    ".cache",
    "rl2048-sandbox",
    hash.digest("hex").slice(0, 16),
  );
  if (!existsSync(dir)) {
    const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
    mkdirSync(tmp, { recursive: true });
    for (const f of out.outputFiles) writeFileSync(join(tmp, f.path.slice(1)), f.contents);
    try {
      renameSync(tmp, dir);
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // another process won the race
    }
  }
  return { dir, host: join(dir, "sandboxHost.mjs") };
}
