#!/usr/bin/env node
// Generates src/types.ts from Trove's OpenAPI description. It starts nothing itself: point it
// at a running Trove or at a file (`trove openapi > openapi.json`).
//
//   node scripts/gen-types.mjs [--url http://127.0.0.1:8080 | --file openapi.json] [--out src/types.ts] [--check]
//
// Without --url or --file it reads $TROVE_URL (default http://127.0.0.1:8080). --check writes
// nothing: it exits 1 when the committed file differs from what the description generates.
//
// The generator knows exactly the schema keywords Trove's description uses and fails on any
// other one, so a new construct on the server breaks the check instead of slipping through
// as `unknown`.

import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
  const args = { url: undefined, file: undefined, out: path.join(here, "..", "src", "types.ts"), check: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--url") args.url = value();
    else if (a === "--file") args.file = value();
    else if (a === "--out") args.out = value();
    else if (a === "--check") args.check = true;
    else if (a === "--help" || a === "-h") {
      console.log("usage: gen-types.mjs [--url BASE_URL | --file openapi.json] [--out src/types.ts] [--check]");
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

async function loadSpec({ url, file }) {
  if (file) return { spec: JSON.parse(await readFile(file, "utf8")), source: file };
  const base = url ?? process.env.TROVE_URL ?? "http://127.0.0.1:8080";
  const target = base.endsWith(".json") ? base : `${base.replace(/\/+$/, "")}/openapi.json`;
  let res;
  try {
    res = await fetch(target);
  } catch (e) {
    throw new Error(`could not reach ${target} (is Trove running?): ${e.cause?.message ?? e.message}`);
  }
  if (!res.ok) throw new Error(`${target} answered ${res.status}`);
  return { spec: await res.json(), source: target };
}

// Keywords that only document or constrain values; they do not change the TypeScript type.
const ANNOTATIONS = new Set([
  "description", "format", "minimum", "maximum", "pattern", "example", "default",
  "minItems", "maxItems", "minLength", "maxLength", "title", "deprecated", "exclusiveMinimum",
  "exclusiveMaximum", "examples",
]);
const SHAPE = new Set(["type", "properties", "required", "items", "enum", "allOf", "$ref", "additionalProperties", "oneOf", "const"]);

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const key = (k) => (IDENT.test(k) ? k : JSON.stringify(k));

function doc(text, indent) {
  if (!text) return "";
  const lines = String(text).replace(/\*\//g, "*\\/").split("\n");
  if (lines.length === 1) return `${indent}/** ${lines[0]} */\n`;
  return `${indent}/**\n${lines.map((l) => `${indent} *${l ? " " + l : ""}`).join("\n")}\n${indent} */\n`;
}

function refName(ref) {
  const m = /^#\/components\/schemas\/([A-Za-z0-9_]+)$/.exec(ref);
  if (!m) throw new Error(`unsupported $ref ${ref}`);
  return m[1];
}

/** The TypeScript type of a schema, as an expression. */
function typeOf(schema, indent, where) {
  if (schema === true || schema === undefined) return "unknown";
  if (typeof schema !== "object" || schema === null) throw new Error(`${where}: not a schema`);
  for (const k of Object.keys(schema)) {
    if (!ANNOTATIONS.has(k) && !SHAPE.has(k)) throw new Error(`${where}: unsupported schema keyword ${JSON.stringify(k)}`);
  }
  if (schema.$ref) return refName(schema.$ref);
  if (schema.allOf) return schema.allOf.map((s, i) => wrap(typeOf(s, indent, `${where}.allOf[${i}]`))).join(" & ");
  if (schema.oneOf) return schema.oneOf.map((s, i) => wrap(typeOf(s, indent, `${where}.oneOf[${i}]`))).join(" | ");
  if ("const" in schema) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map((v) => (v === null ? "null" : JSON.stringify(v))).join(" | ");
  const types = schema.type === undefined ? (schema.properties ? ["object"] : []) : [].concat(schema.type);
  if (types.length === 0) return "unknown";
  return types.map((t) => single(t, schema, indent, where)).join(" | ");
}

const wrap = (t) => (/[|&]/.test(t) && !t.startsWith("{") ? `(${t})` : t);

function single(t, schema, indent, where) {
  switch (t) {
    case "string":
      return "string";
    case "integer":
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "null":
      return "null";
    case "array":
      return `${wrap(typeOf(schema.items, indent, `${where}.items`))}[]`;
    case "object":
      return objectType(schema, indent, where);
    default:
      throw new Error(`${where}: unsupported type ${JSON.stringify(t)}`);
  }
}

function objectType(schema, indent, where) {
  const props = schema.properties ?? {};
  const required = new Set(schema.required ?? []);
  const inner = indent + "  ";
  let out = "{\n";
  for (const [name, prop] of Object.entries(props)) {
    out += doc(prop.description, inner);
    out += `${inner}${key(name)}${required.has(name) ? "" : "?"}: ${typeOf(prop, inner, `${where}.${name}`)};\n`;
  }
  const extra = schema.additionalProperties;
  if (extra !== undefined && extra !== false) {
    out += `${inner}[key: string]: ${extra === true ? "unknown" : typeOf(extra, inner, `${where}.additionalProperties`)};\n`;
  }
  if (Object.keys(props).length === 0 && (extra === undefined || extra === false)) return "Record<string, never>";
  return out + `${indent}}`;
}

function schemaDecl(name, schema) {
  const text = doc(schema.description, "");
  const t = typeOf(schema, "", name);
  const isObject = t.startsWith("{") && !schema.allOf && !schema.oneOf;
  return isObject ? `${text}export interface ${name} ${t}\n` : `${text}export type ${name} = ${t};\n`;
}

const METHODS = ["get", "put", "post", "delete", "patch", "head", "options"];

function responseType(response, where) {
  const content = response.content;
  if (!content) return "void";
  const types = [];
  for (const [mime, media] of Object.entries(content)) {
    if (mime === "application/json") types.push(typeOf(media.schema, "      ", `${where} ${mime}`));
    else types.push("string");
  }
  return [...new Set(types)].join(" | ");
}

function paramsType(params, where, indent) {
  const groups = { path: [], query: [], header: [] };
  for (const p of params ?? []) {
    if (!(p.in in groups)) throw new Error(`${where}: unsupported parameter location ${p.in}`);
    groups[p.in].push(p);
  }
  let out = "{\n";
  for (const [group, list] of Object.entries(groups)) {
    if (list.length === 0) {
      out += `${indent}  ${group}: Record<string, never>;\n`;
      continue;
    }
    out += `${indent}  ${group}: {\n`;
    for (const p of list) {
      out += doc(p.description, indent + "    ");
      out += `${indent}    ${key(p.name)}${p.required ? "" : "?"}: ${typeOf(p.schema, indent + "    ", `${where} ${p.name}`)};\n`;
    }
    out += `${indent}  };\n`;
  }
  return out + `${indent}}`;
}

export function generate(spec) {
  if (!/^3\.1\./.test(spec.openapi ?? "")) throw new Error(`expected OpenAPI 3.1, got ${spec.openapi}`);
  let out = "";
  out += "// Generated by scripts/gen-types.mjs from Trove's /openapi.json. Do not edit:\n";
  out += "// `npm run gen-types` regenerates it and `npm run check-types` fails on any difference.\n\n";
  out += "/* eslint-disable */\n\n";
  out += `/** The API version this file was generated from (\`info.version\`). */\n`;
  out += `export const API_VERSION = ${JSON.stringify(spec.info?.version ?? "")};\n\n`;
  for (const [name, schema] of Object.entries(spec.components?.schemas ?? {})) {
    out += schemaDecl(name, schema) + "\n";
  }
  out += "/** Every route: its parameters, request body and the body of each status it can answer with. */\n";
  out += "export interface Routes {\n";
  const ids = [];
  for (const [p, item] of Object.entries(spec.paths ?? {})) {
    for (const m of Object.keys(item)) {
      if (!METHODS.includes(m)) throw new Error(`${p}: unsupported path item key ${m}`);
    }
    for (const m of METHODS) {
      const op = item[m];
      if (!op) continue;
      const where = `${m.toUpperCase()} ${p}`;
      ids.push([where, op.operationId]);
      out += doc([op.summary, op.description].filter(Boolean).join("\n\n"), "  ");
      out += `  ${JSON.stringify(where)}: {\n`;
      out += `    operationId: ${JSON.stringify(op.operationId ?? "")};\n`;
      out += `    params: ${paramsType([...(item.parameters ?? []), ...(op.parameters ?? [])], where, "    ")};\n`;
      let body = "never";
      if (op.requestBody) {
        const json = op.requestBody.content?.["application/json"];
        if (!json) throw new Error(`${where}: request body without application/json`);
        body = typeOf(json.schema, "    ", `${where} body`);
        if (!op.requestBody.required) body = `${wrap(body)} | undefined`;
      }
      out += `    body: ${body};\n`;
      out += `    responses: {\n`;
      for (const [status, response] of Object.entries(op.responses ?? {})) {
        out += doc(response.description, "      ");
        out += `      ${key(status)}: ${responseType(response, `${where} ${status}`)};\n`;
      }
      out += `    };\n`;
      out += `  };\n`;
    }
  }
  out += "}\n\n";
  out += "/** `METHOD /path` of every route. */\n";
  out += "export type Route = keyof Routes;\n\n";
  out += "/** The body of a route's answer with the given status. */\n";
  out += "export type ResponseOf<R extends Route, S extends keyof Routes[R][\"responses\"]> = Routes[R][\"responses\"][S];\n";
  return out;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const { spec, source } = await loadSpec(args);
  const text = generate(spec);
  if (args.check) {
    let committed = "";
    try {
      committed = await readFile(args.out, "utf8");
    } catch {
      console.error(`${args.out} does not exist; run npm run gen-types`);
      process.exit(1);
    }
    if (committed === text) {
      console.log(`${path.relative(process.cwd(), args.out)} matches ${source}`);
      return;
    }
    const a = committed.split("\n");
    const b = text.split("\n");
    let i = 0;
    while (i < a.length && i < b.length && a[i] === b[i]) i++;
    console.error(`${args.out} differs from what ${source} generates, first at line ${i + 1}:`);
    console.error(`  committed: ${a[i] ?? "<end of file>"}`);
    console.error(`  generated: ${b[i] ?? "<end of file>"}`);
    console.error("run `npm run gen-types` against the current Trove and commit the result");
    process.exit(1);
  }
  await writeFile(args.out, text);
  console.log(`wrote ${path.relative(process.cwd(), args.out)} from ${source}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`gen-types: ${e.message}`);
    process.exit(1);
  });
}
