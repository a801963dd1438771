// Builds the console into exactly three files, dist/index.html, dist/app.js and dist/app.css,
// which Trove embeds (include_str!) and serves at /console. The output is deterministic (no
// timestamps, no source maps, a pinned esbuild), so CI can rebuild and `git diff --exit-code
// console/dist`. `node build.mjs --check` builds in memory and exits 1 when dist/ differs.
import { build } from "esbuild";
import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, "dist");
const check = process.argv.includes("--check");

const common = {
  bundle: true,
  write: false,
  minify: true,
  sourcemap: false,
  legalComments: "none",
  charset: "ascii",
  logLevel: "warning",
  absWorkingDir: here,
};

const [js, css] = await Promise.all([
  build({
    ...common,
    entryPoints: ["src/main.ts"],
    format: "esm",
    target: "es2022",
    platform: "browser",
    // The TypeScript client comes in from its sources, ../clients/typescript/src.
  }),
  build({ ...common, entryPoints: ["src/app.css"], loader: { ".css": "css" }, target: "chrome110" }),
]);

const files = {
  "index.html": readFileSync(path.join(here, "src", "index.html"), "utf8"),
  "app.js": js.outputFiles[0].text,
  "app.css": css.outputFiles[0].text,
};

let differ = [];
for (const [name, text] of Object.entries(files)) {
  const file = path.join(dist, name);
  const old = existsSync(file) ? readFileSync(file, "utf8") : null;
  if (old !== text) differ.push(name);
  if (!check) {
    mkdirSync(dist, { recursive: true });
    writeFileSync(file, text);
  }
}
if (check) {
  if (differ.length) {
    console.error(`console/dist is not current (${differ.join(", ")} differ): run npm run build in console/ and commit dist/`);
    process.exit(1);
  }
  console.log("console/dist is current");
} else {
  const sizes = Object.entries(files).map(([n, t]) => `${n} ${(Buffer.byteLength(t) / 1024).toFixed(1)} KiB`);
  console.log(`built console/dist: ${sizes.join(", ")}${differ.length ? "" : " (unchanged)"}`);
}
