// build.mjs: bundles the dashboard (app.js + editor.js + CodeMirror) with
// esbuild into OUTDIR with index.html and style.css. bitkit.mjs (the wasm
// client) stays a separate file beside it. Usage: node web/build.mjs OUTDIR
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out) {
  console.error("usage: node web/build.mjs OUTDIR");
  process.exit(2);
}
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(here, "app.js")],
  bundle: true,
  format: "esm",
  minify: true,
  target: "es2022",
  external: ["./bitkit.mjs"],
  outfile: join(out, "app.js"),
  logLevel: "warning",
});
for (const f of ["index.html", "style.css"]) copyFileSync(join(here, f), join(out, f));
