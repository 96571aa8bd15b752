// Bundles the investigation console (web/console) into dist/web at build time: served by `serve`
// from there, with no CDN, so it works offline.
import { defineConfig } from "vite";

export default defineConfig({
  root: new URL("./console/", import.meta.url).pathname,
  base: "/",
  logLevel: "warn",
  build: {
    outDir: new URL("../dist/web/", import.meta.url).pathname,
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
  },
});
