#!/usr/bin/env python3
"""Mutation harness: how many unnamed defects in the example pipeline's own Python does `check` catch?

Each mutant is the example (examples/momentum) with one small change to one of the pipeline's Python
files, the kind a person makes by accident:

  cmp-negate   a comparison negated          (<  ->  >=,  ==  ->  !=,  in  ->  not in,  is  ->  is not)
  cmp-bound    a comparison's bound moved    (<  ->  <=,  >  ->  >=, and back)
  int+1/int-1  an integer literal +-1        (windows, horizons, indices, widths)
  add-sub      a binary + or - swapped       (also += and -=)

in the builders, the label code, the inference paths and the interpreters (FILES). Integers that are
no window or horizon are not mutated: plain indices (`row[0]`, `argv[2]`, `xs[-1]`), and integers in
error handling (`raise`, `print`, `sys.exit`, the `start=` of `enumerate`, which numbers lines for
messages). Slice bounds (`xs[-14:]`) and every other integer are.

For every mutant the harness runs `plumbline --format json check` on a fresh copy of the example. A
mutant is caught when the exit code is 1 (a finding at error) or 2 (the pipeline could not be run, which
fails the pull request as well); a crash of plumbline itself (a panic, a signal) or a timeout is not. A mutant that survives is either *equivalent* (it changes nothing observable
on any data the pipeline can be given: argued, one by one, in tests/mutants/equivalent.toml, and not
counted) or a *survivor* (a blind spot, listed in the report; the known ones are listed in that file
too, under [[survivor]], with why they survive, and still counted as missed).

  caught share = caught / (mutants - equivalent)

Usage (from the repository root, after `cargo build`):
  python3 tests/mutants/run.py                      every mutant; prints the report (Markdown)
  python3 tests/mutants/run.py --sample 12          every k-th mutant, for CI: fails on a survivor
                                                    that equivalent.toml neither argues equivalent
                                                    nor lists as a known survivor
  python3 tests/mutants/run.py --list               the mutants, without running them
  python3 tests/mutants/run.py --ids FILE           only the mutants whose ids are FILE's lines
Options: --plumbline PATH (default target/debug/plumbline), --jobs N (default 2), --report FILE,
--min SHARE (default 0.95: exit 1 below it, full runs only), --only SUBSTRING (mutant ids containing it).
"""

import argparse
import ast
import concurrent.futures
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tokenize
import tomllib
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPO, "examples", "momentum")
EQUIVALENT = os.path.join(REPO, "tests", "mutants", "equivalent.toml")

FILES = [
    "pipeline/features.py",
    "pipeline/build_training.py",
    "pipeline/labels.py",
    "pipeline/build_labels.py",
    "backtest/features.py",
    "live/features.py",
    "backtest/infer.py",
    "live/infer.py",
    "backtest/interpret.py",
    "live/interpret.py",
]

NEGATE = {"<": ">=", ">=": "<", ">": "<=", "<=": ">", "==": "!=", "!=": "==", "in": "not in", "not in": "in", "is": "is not", "is not": "is"}
BOUND = {"<": "<=", "<=": "<", ">": ">=", ">=": ">"}
CMP_NODES = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}


@dataclass
class Mutant:
    file: str
    line: int
    col: int
    kind: str
    before: str
    after: str
    # Replace source[start:end] (character offsets) with `after`.
    start: int
    end: int
    id: str = ""
    result: dict = field(default_factory=dict)


def offsets(text):
    """Character offset of the start of each line (1-based line numbers index it directly)."""
    starts, pos = [0, 0], 0
    for line in text.splitlines(keepends=True):
        pos += len(line)
        starts.append(pos)
    return starts


def tokens_between(toks, start, end):
    """Tokens that lie within (start, end), as (line, col) pairs; parentheses skipped."""
    return [t for t in toks if start <= t.start and t.end <= end and t.string not in ("(", ")")]


def no_mutation_context(tree):
    """Ids of integer nodes that are no window or horizon: those that only shape messages (raise
    statements, print/exit calls, `start=`), and plain indices (`row[0]`, `argv[2]`, `xs[-1]`)."""
    skip = set()
    for node in ast.walk(tree):
        roots = []
        if isinstance(node, ast.Subscript):
            index = node.slice
            if isinstance(index, ast.UnaryOp) and isinstance(index.op, ast.USub):
                index = index.operand
            if isinstance(index, ast.Constant):
                skip.add(id(index))
        if isinstance(node, ast.Raise):
            roots.append(node)
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in ("print", "exit"):
                roots.append(node)
            if name == "enumerate":
                roots += [k.value for k in node.keywords if k.arg == "start"]
        for r in roots:
            skip.update(id(n) for n in ast.walk(r))
    return skip


def mutants_of(rel):
    text = open(os.path.join(EXAMPLE, rel), encoding="utf-8").read()
    tree = ast.parse(text)
    toks = list(tokenize.generate_tokens(io.StringIO(text).readline))
    starts = offsets(text)
    at = lambda lc: starts[lc[0]] + lc[1]  # noqa: E731
    skip = no_mutation_context(tree)
    out = []

    def add(line, col, kind, before, after, s, e):
        out.append(Mutant(rel, line, col, kind, before, after, s, e))

    def op_tokens(left, right, want):
        """The operator tokens between two operands, if they spell `want`."""
        ts = tokens_between(toks, (left.end_lineno, left.end_col_offset), (right.lineno, right.col_offset))
        if " ".join(t.string for t in ts) != want:
            return None
        return ts

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for i, op in enumerate(node.ops):
                sym = CMP_NODES[type(op)]
                ts = op_tokens(operands[i], operands[i + 1], sym)
                if ts is None:
                    continue
                s, e = at(ts[0].start), at(ts[-1].end)
                for kind, table in (("cmp-negate", NEGATE), ("cmp-bound", BOUND)):
                    if sym in table:
                        add(ts[0].start[0], ts[0].start[1], kind, sym, table[sym], s, e)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
            sym = "+" if isinstance(node.op, ast.Add) else "-"
            ts = op_tokens(node.left, node.right, sym)
            if ts:
                add(ts[0].start[0], ts[0].start[1], "add-sub", sym, "-" if sym == "+" else "+", at(ts[0].start), at(ts[0].end))
        elif isinstance(node, ast.AugAssign) and isinstance(node.op, (ast.Add, ast.Sub)):
            sym = "+=" if isinstance(node.op, ast.Add) else "-="
            ts = op_tokens(node.target, node.value, sym)
            if ts:
                add(ts[0].start[0], ts[0].start[1], "add-sub", sym, "-=" if sym == "+=" else "+=", at(ts[0].start), at(ts[0].end))
        elif isinstance(node, ast.Constant) and type(node.value) is int and id(node) not in skip:
            s, e = at((node.lineno, node.col_offset)), at((node.end_lineno, node.end_col_offset))
            for kind, d in (("int+1", 1), ("int-1", -1)):
                add(node.lineno, node.col_offset, kind, text[s:e], str(node.value + d), s, e)

    # Stable ids: the file, the line's text and the change, numbered when a line holds the same one twice.
    out.sort(key=lambda m: (m.line, m.col, m.kind))
    lines = text.splitlines()
    seen = {}
    for m in out:
        base = f"{rel}: `{lines[m.line - 1].strip()}` {m.before} -> {m.after}"
        seen[base] = seen.get(base, 0) + 1
        m.id = base if seen[base] == 1 else f"{base} #{seen[base]}"
    return text, out


def all_mutants():
    sources, mutants = {}, []
    for rel in FILES:
        text, ms = mutants_of(rel)
        sources[rel] = text
        mutants += ms
    return sources, mutants


def run_one(plumbline, workdir, source, m, timeout):
    # A fresh copy for every mutant: a mutant may write anywhere in it (`open(argv[1], "w")` overwrites
    # the prices it was given), and must not decide the next mutant's fate.
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.copytree(EXAMPLE, workdir)
    path = os.path.join(workdir, m.file)
    mutated = source[: m.start] + m.after + source[m.end :]
    compile(mutated, m.file, "exec")  # every mutation keeps the file valid Python
    with open(path, "w", encoding="utf-8") as f:
        f.write(mutated)
    t0 = time.monotonic()
    try:
        p = subprocess.run(
            [plumbline, "--config", os.path.join(workdir, "plumbline.toml"), "--format", "json", "check"],
            capture_output=True, text=True, timeout=timeout, env={**os.environ, "CI": "true", "NO_COLOR": "1"},
        )
        code, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        code, out, err = None, "", f"timed out after {timeout} s"
    codes = []
    try:
        codes = sorted({f["code"] for f in json.loads(out)["findings"] if f["severity"] == "error"})
    except (json.JSONDecodeError, KeyError, TypeError):
        pass
    why = ", ".join(codes) if codes else (err.strip().splitlines() or [""])[-1][:160]
    if code not in (0, 1, 2, None):
        why = f"plumbline crashed (exit {code}): {why}"  # a panic is a bug of plumbline, not a catch
    return {"exit": code, "caught": code in (1, 2), "by": why, "secs": round(time.monotonic() - t0, 1)}


def load_verdicts():
    """The argued equivalent mutants, and the known survivors (blind spots, counted as missed), by id."""
    with open(EQUIVALENT, "rb") as f:
        doc = tomllib.load(f)
    return ({e["id"]: e["why"] for e in doc.get("equivalent", [])},
            {e["id"]: e["why"] for e in doc.get("survivor", [])})


def report(mutants, equivalent, known, elapsed, sampled):
    caught = [m for m in mutants if m.result["caught"]]
    survived = [m for m in mutants if not m.result["caught"]]
    equiv = [m for m in survived if m.id in equivalent]
    missed = [m for m in survived if m.id not in equivalent]
    counted = len(mutants) - len(equiv)
    share = len(caught) / counted if counted else 1.0
    lines = [
        f"# Mutation harness: {'a sample of ' if sampled else ''}{len(mutants)} mutants of examples/momentum",
        "",
        f"- caught: {len(caught)}",
        f"- equivalent (argued in tests/mutants/equivalent.toml, not counted): {len(equiv)}",
        f"- survived: {len(missed)}",
        f"- **caught share: {len(caught)}/{counted} = {share:.1%}**",
        f"- {elapsed:.0f} s",
        "",
        "| file | mutants | caught | equivalent | survived |",
        "|---|---:|---:|---:|---:|",
    ]
    for rel in FILES:
        ms = [m for m in mutants if m.file == rel]
        if ms:
            c = sum(m.result["caught"] for m in ms)
            e = sum(m in equiv for m in ms)
            lines.append(f"| `{rel}` | {len(ms)} | {c} | {e} | {len(ms) - c - e} |")
    by = {}
    for m in caught:
        for code in m.result["by"].split(", "):
            by[code] = by.get(code, 0) + 1
    lines += ["", "Caught by (a mutant can be caught by several codes):", ""]
    lines += [f"- `{k}`: {v}" for k, v in sorted(by.items(), key=lambda kv: (-kv[1], kv[0]))]
    lines += ["", "## Survivors", ""]
    lines += [f"- {m.id} (line {m.line}, {m.kind})" + (f": {known[m.id]}" if m.id in known else " **(not known)**")
              for m in missed] or ["none"]
    lines += ["", "## Equivalent", ""]
    lines += [f"- {m.id}: {equivalent[m.id]}" for m in equiv] or ["none"]
    return "\n".join(lines) + "\n", share, missed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plumbline", default=os.path.join(REPO, "target", "debug", "plumbline"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--sample", type=int, default=0)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--ids", default="")
    ap.add_argument("--report", default="")
    ap.add_argument("--min", type=float, default=0.95)
    ap.add_argument("--timeout", type=int, default=600)
    args = ap.parse_args()

    sources, mutants = all_mutants()
    ids = [m.id for m in mutants]
    assert len(ids) == len(set(ids)), "mutant ids must be unique"
    equivalent, known = load_verdicts()
    stale = sorted((set(equivalent) | set(known)) - set(ids))
    if stale:
        sys.exit("tests/mutants/equivalent.toml argues mutants that no longer exist:\n  " + "\n  ".join(stale))
    if args.only:
        mutants = [m for m in mutants if args.only in m.id]
    if args.ids:
        with open(args.ids, encoding="utf-8") as f:
            wanted = {line.rstrip("\n") for line in f if line.strip()}
        mutants = [m for m in mutants if m.id in wanted]
    if args.sample:
        step = max(1, len(mutants) // args.sample)
        mutants = mutants[::step][: args.sample]
    if args.list:
        for m in mutants:
            print(f"{m.file}:{m.line}:{m.col + 1}\t{m.kind}\t{m.id}")
        print(f"{len(mutants)} mutants", file=sys.stderr)
        return 0
    if not os.access(args.plumbline, os.X_OK):
        sys.exit(f"{args.plumbline}: no plumbline binary (run `cargo build` first, or pass --plumbline)")

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="plumbline-mutants-") as tmp:
        free = [os.path.join(tmp, f"w{j}") for j in range(args.jobs)]

        def task(m):
            d = free.pop()
            try:
                m.result = run_one(args.plumbline, d, sources[m.file], m, args.timeout)
            finally:
                free.append(d)
            mark = "caught" if m.result["caught"] else ("equivalent" if m.id in equivalent else "SURVIVED")
            print(f"{mark:>10}  {m.result['secs']:>5}s  {m.id}  [{m.result['by']}]", file=sys.stderr, flush=True)

        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(task, mutants))
    partial = bool(args.sample or args.only or args.ids)
    text, share, missed = report(mutants, equivalent, known, time.monotonic() - t0, partial)
    print(text)
    if args.report:
        with open(args.report, "w", encoding="utf-8") as f:
            f.write(text)
    unknown = [m for m in missed if m.id not in known]
    if partial:
        # A sample fails on a survivor nobody has argued: a new blind spot, or a probe that stopped working.
        return 1 if unknown else 0
    return 1 if share < args.min else 0


if __name__ == "__main__":
    sys.exit(main())
