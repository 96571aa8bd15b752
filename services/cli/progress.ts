/** Progress on stderr: a redrawn bar on a terminal, a line every 10% otherwise (CI logs). */
export interface Progress {
  update(done: number): void;
  finish(message?: string): void;
}

export function createProgress(label: string, total: number, stream: NodeJS.WriteStream = process.stderr, quiet = false): Progress {
  const started = Date.now();
  const tty = stream.isTTY === true;
  let lastDraw = 0;
  let lastDecile = -1;
  let current = 0;

  const line = (done: number) => {
    const seconds = (Date.now() - started) / 1000;
    const rate = seconds > 0 ? Math.round(done / seconds) : 0;
    const pct = total > 0 ? Math.min(100, (done / total) * 100) : 0;
    const width = 30;
    const filled = Math.round((pct / 100) * width);
    const bar = `${"█".repeat(filled)}${"░".repeat(width - filled)}`;
    return `${label} ${bar} ${pct.toFixed(0).padStart(3)}% ${done.toLocaleString("en-US")}/${total.toLocaleString("en-US")} ${rate.toLocaleString("en-US")}/s ${seconds.toFixed(1)}s`;
  };

  return {
    update(done) {
      current = done;
      if (quiet) return;
      const now = Date.now();
      if (tty) {
        if (now - lastDraw < 100) return;
        lastDraw = now;
        stream.write(`\r${line(done)}`);
      } else {
        const decile = total > 0 ? Math.min(9, Math.floor((done / total) * 10)) : 0;
        if (decile > lastDecile) {
          lastDecile = decile;
          stream.write(`${line(done)}\n`);
        }
      }
    },
    finish(message) {
      if (quiet) return;
      stream.write(`${tty ? "\r" : ""}${line(current)}${message ? ` ${message}` : ""}\n`);
    },
  };
}

/**
 * Progress of bringing the exact model up to date (docs/tables.md): on stderr, a bar per phase
 * once it takes a while; nothing when it is already fresh.
 */
export function refreshProgress(quiet: boolean): {
  onProgress: (phase: "read" | "compute", done: number, total: number) => void;
  finish(): void;
} {
  const bars = new Map<string, Progress>();
  const started = Date.now();
  return {
    onProgress(phase, done, total) {
      if (Date.now() - started < 1000) return; // a quick refresh shows nothing
      let bar = bars.get(phase);
      if (!bar) {
        for (const other of bars.values()) other.finish();
        bar = createProgress(phase === "read" ? "exact model: reading events" : "exact model: subjects", total, process.stderr, quiet);
        bars.set(phase, bar);
      }
      bar.update(done);
    },
    finish() {
      for (const bar of bars.values()) bar.finish();
    },
  };
}
