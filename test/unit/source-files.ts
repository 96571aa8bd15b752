import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

/** Every TypeScript file under `dir`, for the tests that read the sources themselves. */
export function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : name.endsWith(".ts") ? [path] : [];
  });
}
