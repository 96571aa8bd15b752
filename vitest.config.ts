import { defineConfig } from "vitest/config";

// chDB allows one data directory per process, so every test file runs in its own fork.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/build-setup.ts", "test/kafka-setup.ts"],
    pool: "forks",
    isolate: true,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    maxWorkers: 2,
  },
});
