// The Dockerfile and docker-compose.yml cannot be built or run here (no Docker engine), so this
// checks only that every file they name exists: COPY sources, what the build stage hands over,
// the ENTRYPOINT script, `npm run` scripts, the compose build context and bind-mounted host paths.
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, normalize, posix, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const DOCKERFILE = join(ROOT, "Dockerfile");
const COMPOSE = join(ROOT, "docker-compose.yml");

interface Instruction {
  /** Upper-case keyword: FROM, COPY, RUN, ... */
  keyword: string;
  args: string;
  line: number;
}

interface Stage {
  name: string | undefined;
  /** WORKDIR in effect at each instruction of the stage (absolute, posix). */
  instructions: (Instruction & { workdir: string })[];
}

/** Dockerfile instructions with line continuations joined and comments dropped. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = "";
  let startLine = 0;
  text.split("\n").forEach((raw, index) => {
    const line = raw.trimEnd();
    if (pending === "" && (line.trim() === "" || line.trimStart().startsWith("#"))) return;
    if (pending !== "" && line.trimStart().startsWith("#")) return;
    if (pending === "") startLine = index + 1;
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    pending += line;
    const match = /^\s*(\S+)\s*(.*)$/s.exec(pending);
    if (match) out.push({ keyword: (match[1] ?? "").toUpperCase(), args: (match[2] ?? "").trim(), line: startLine });
    pending = "";
  });
  return out;
}

function stages(list: Instruction[]): Stage[] {
  const out: Stage[] = [];
  let workdir = "/";
  for (const ins of list) {
    if (ins.keyword === "FROM") {
      const name = /\bAS\s+(\S+)\s*$/i.exec(ins.args)?.[1];
      out.push({ name, instructions: [] });
      workdir = "/";
    }
    if (ins.keyword === "WORKDIR") workdir = posix.resolve(workdir, ins.args);
    out.at(-1)?.instructions.push({ ...ins, workdir });
  }
  return out;
}

interface Copy {
  from: string | undefined;
  sources: string[];
  destination: string;
  line: number;
  workdir: string;
}

/** COPY/ADD in shell or JSON form, with its flags (`--from=`, `--chown=`, ...) split off. */
function parseCopy(ins: Instruction & { workdir: string }): Copy {
  let words: string[];
  if (ins.args.replace(/^(--\S+\s+)*/, "").startsWith("[")) {
    const flags = /^((?:--\S+\s+)*)/.exec(ins.args)?.[1] ?? "";
    words = [...flags.split(/\s+/).filter(Boolean), ...(JSON.parse(ins.args.slice(flags.length)) as string[])];
  } else {
    words = ins.args.split(/\s+/).filter(Boolean);
  }
  const flags = words.filter((w) => w.startsWith("--"));
  const paths = words.filter((w) => !w.startsWith("--"));
  const from = flags.find((f) => f.startsWith("--from="))?.slice("--from=".length);
  if (paths.length < 2) throw new Error(`Dockerfile:${ins.line}: ${ins.keyword} needs a source and a destination`);
  return { from, sources: paths.slice(0, -1), destination: paths.at(-1) as string, line: ins.line, workdir: ins.workdir };
}

/** Literal (non-glob, non-negated) .dockerignore patterns, as paths relative to the context. */
function dockerignored(context: string): string[] {
  const file = join(context, ".dockerignore");
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#") && !l.startsWith("!") && !/[*?[]/.test(l))
    .map((l) => posix.normalize(l.replace(/^\/+/, "")).replace(/\/+$/, ""));
}

const dockerfile = stages(instructions(readFileSync(DOCKERFILE, "utf8")));
const all = dockerfile.flatMap((s) => s.instructions);
const copies = all.filter((i) => i.keyword === "COPY" || i.keyword === "ADD").map(parseCopy);
const contextCopies = copies.filter((c) => c.from === undefined);
const stageCopies = copies.filter((c) => c.from !== undefined);
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts?: Record<string, string>; files?: string[] };

describe("Dockerfile", () => {
  it("has a build stage and a runtime stage", () => {
    expect(dockerfile.length, "FROM instructions").toBeGreaterThanOrEqual(2);
    expect(contextCopies.length, "COPY instructions from the build context").toBeGreaterThan(0);
    expect(stageCopies.length, "COPY --from= instructions").toBeGreaterThan(0);
  });

  it("copies only files that exist in the repository (the build context) and that .dockerignore keeps", () => {
    const ignored = dockerignored(ROOT);
    const sources = contextCopies.flatMap((c) => c.sources.map((source) => ({ source, line: c.line })));
    expect(sources.length).toBeGreaterThan(0);
    for (const { source, line } of sources) {
      expect(isAbsolute(source), `Dockerfile:${line}: COPY ${source} leaves the build context`).toBe(false);
      const path = resolve(ROOT, source);
      expect(relative(ROOT, path).startsWith(".."), `Dockerfile:${line}: COPY ${source} leaves the build context`).toBe(false);
      expect(existsSync(path), `Dockerfile:${line}: COPY ${source}: no such file in the repository`).toBe(true);
      const rel = posix.normalize(source).replace(/\/+$/, "");
      const excluding = ignored.find((p) => rel === p || rel.startsWith(`${p}/`));
      expect(excluding, `Dockerfile:${line}: COPY ${source} is excluded by .dockerignore (${excluding})`).toBeUndefined();
    }
  });

  it("hands over from the build stage only what tsconfig.build.json's outDir produces", () => {
    const config = ts.getParsedCommandLineOfConfigFile(
      join(ROOT, "tsconfig.build.json"),
      {},
      {
        ...ts.sys,
        onUnRecoverableConfigFileDiagnostic: (d) => {
          throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"));
        },
      },
    );
    const outDir = config?.options.outDir;
    expect(outDir, "tsconfig.build.json compilerOptions.outDir").toBeDefined();
    const outRel = relative(ROOT, outDir as string);
    expect(outRel).toBe("dist");

    for (const copy of stageCopies) {
      const stage = dockerfile.find((s) => s.name === copy.from);
      expect(stage, `Dockerfile:${copy.line}: COPY --from=${copy.from}: no stage named so`).toBeDefined();
      // The stage builds in its WORKDIR with `npm run build`, so its outDir is <WORKDIR>/dist.
      const build = stage!.instructions.find((i) => i.keyword === "RUN" && /\bnpm run build\b/.test(i.args));
      expect(build, `stage ${copy.from} runs no 'npm run build'`).toBeDefined();
      const produced = posix.join(build!.workdir, outRel.split("\\").join("/"));
      for (const source of copy.sources) {
        const path = posix.resolve(build!.workdir, source);
        expect(
          path === produced || path.startsWith(`${produced}/`),
          `Dockerfile:${copy.line}: COPY --from=${copy.from} ${source}: not under ${produced}`,
        ).toBe(true);
      }
      // What the build reads must have been copied into that stage: the tsconfig files and rootDir.
      const copiedInStage = stage!.instructions
        .filter((i) => i.keyword === "COPY" && !i.args.includes("--from="))
        .flatMap((i) => parseCopy(i).sources.map((s) => posix.normalize(s).replace(/\/+$/, "")));
      const needed = ["package.json", "tsconfig.build.json", "tsconfig.json", relative(ROOT, config!.options.rootDir ?? ROOT)];
      for (const file of needed) expect(copiedInStage, `stage ${copy.from} builds without ${file}`).toContain(file);
    }
  });

  it("gives the runtime stage everything package.json's `files` ships, and package.json itself", () => {
    const runtime = dockerfile.at(-1)!;
    const shipped = runtime.instructions
      .filter((i) => i.keyword === "COPY" || i.keyword === "ADD")
      .flatMap((i) => {
        const c = parseCopy(i);
        // A stage copy lands under its destination's name; a context copy under its source's.
        return c.from === undefined
          ? c.sources.map((s) => posix.normalize(s).replace(/\/+$/, ""))
          : [posix.normalize(c.destination).replace(/^\.\//, "")];
      });
    const files = (pkg.files ?? []).filter((f) => !f.startsWith("!"));
    expect(files.length, "package.json files").toBeGreaterThan(0);
    for (const f of [...files, "package.json"])
      expect(shipped, `the runtime image lacks ${f}`).toContain(posix.normalize(f).replace(/\/+$/, ""));
  });

  it("starts a script that exists", () => {
    const entrypoint = all.filter((i) => i.keyword === "ENTRYPOINT").at(-1);
    expect(entrypoint, "ENTRYPOINT").toBeDefined();
    const words = entrypoint!.args.startsWith("[") ? (JSON.parse(entrypoint!.args) as string[]) : entrypoint!.args.split(/\s+/);
    const script = words.find((w, index) => index > 0 && !w.startsWith("-"));
    expect(words[0]).toBe("node");
    expect(script, `Dockerfile:${entrypoint!.line}: ENTRYPOINT names no script`).toBeDefined();
    const inRepo = join(ROOT, normalize(script!));
    expect(existsSync(inRepo) && statSync(inRepo).isFile(), `ENTRYPOINT script ${script} is not a file in the repository`).toBe(true);
    // …and the runtime stage copies it (or its folder) in.
    const runtimeCopies = dockerfile
      .at(-1)!
      .instructions.filter((i) => i.keyword === "COPY" && !i.args.includes("--from="))
      .flatMap((i) => parseCopy(i).sources.map((s) => posix.normalize(s).replace(/\/+$/, "")));
    const rel = posix.normalize(script!);
    expect(
      runtimeCopies.some((s) => rel === s || rel.startsWith(`${s}/`)),
      `the runtime stage does not copy ${script}`,
    ).toBe(true);
  });

  it("runs only npm scripts package.json has", () => {
    const runs = all
      .filter((i) => i.keyword === "RUN")
      .flatMap((i) =>
        [...i.args.matchAll(/\bnpm run(?:-script)?\s+(?:--\S+\s+)*([^\s;&|]+)/g)].map((m) => ({ name: m[1]!, line: i.line })),
      );
    expect(runs.length, "npm run in RUN instructions").toBeGreaterThan(0);
    for (const { name, line } of runs)
      expect(Object.keys(pkg.scripts ?? {}), `Dockerfile:${line}: npm run ${name}: no such script`).toContain(name);
  });
});

type ComposeService = {
  build?: string | { context?: string; dockerfile?: string };
  volumes?: (string | { type?: string; source?: string; target?: string })[];
  env_file?: string | string[];
};
const compose = parse(readFileSync(COMPOSE, "utf8")) as { services: Record<string, ComposeService> };
const composeDir = dirname(COMPOSE);

describe("docker-compose.yml", () => {
  it("builds from a context that holds the Dockerfile", () => {
    const builds = Object.entries(compose.services).filter(([, s]) => s.build !== undefined);
    expect(builds.length, "services with build:").toBeGreaterThan(0);
    for (const [name, service] of builds) {
      const build = typeof service.build === "string" ? { context: service.build } : service.build!;
      const context = resolve(composeDir, build.context ?? ".");
      expect(
        existsSync(context) && statSync(context).isDirectory(),
        `services.${name}.build: context ${build.context} is not a folder`,
      ).toBe(true);
      const file = resolve(context, build.dockerfile ?? "Dockerfile");
      expect(existsSync(file), `services.${name}.build: ${relative(composeDir, file)} does not exist`).toBe(true);
    }
  });

  it("bind-mounts only host paths that exist", () => {
    const mounts: { service: string; source: string }[] = [];
    for (const [name, service] of Object.entries(compose.services)) {
      for (const volume of service.volumes ?? []) {
        const source = typeof volume === "string" ? volume.split(":")[0]! : volume.type === "bind" ? volume.source : undefined;
        // A named volume (no `./`, `../`, `/` or `~`) is not a host path.
        if (source !== undefined && /^(\.{1,2}\/|\/|~)/.test(source)) mounts.push({ service: name, source });
      }
      const envFiles = service.env_file === undefined ? [] : [service.env_file].flat();
      for (const file of envFiles) mounts.push({ service: name, source: file });
    }
    expect(mounts.length, "bind mounts in docker-compose.yml").toBeGreaterThan(0);
    for (const { service, source } of mounts) {
      expect(source.startsWith("~") || isAbsolute(source), `services.${service}: ${source} is outside the repository`).toBe(false);
      expect(existsSync(resolve(composeDir, source)), `services.${service}: bind-mounted ${source} does not exist`).toBe(true);
    }
  });
});
