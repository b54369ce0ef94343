#!/usr/bin/env python3
"""Median time of `plumbline hook pre-commit` on the example repository (docs/benchmarks.md).

Commits examples/momentum into a throwaway git repository, stages a docs edit, and runs the hook as git
would (a fresh process each time, from the repository root) N times, after one warm-up run. Prints the
median, p90 and min, and the same for `plumbline docs --check` (the work-tree check) for comparison.

    cargo build --release && python3 benches/hook_pre_commit.py [--runs 50] [--bin target/release/plumbline]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def git(cwd, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@example.com",
               GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@example.com")
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def timed(cmd, cwd, runs):
    subprocess.run(cmd, cwd=cwd, capture_output=True)  # warm-up (page cache)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        r = subprocess.run(cmd, cwd=cwd, capture_output=True)
        times.append((time.perf_counter() - t) * 1000)
        if r.returncode != 0:
            sys.exit(f"{' '.join(cmd)} exited {r.returncode}: {r.stdout.decode()}{r.stderr.decode()}")
    times.sort()
    return statistics.median(times), times[int(0.9 * (len(times) - 1))], times[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "plumbline"))
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    with tempfile.TemporaryDirectory() as d:
        shutil.copytree(os.path.join(ROOT, "examples", "momentum"), os.path.join(d, "momentum"),
                        ignore=shutil.ignore_patterns("__pycache__", "prices.csv"))
        git(d, "init", "-q")
        git(d, "add", "-A")
        git(d, "commit", "-q", "-m", "base")
        md = os.path.join(d, "momentum", "docs", "PIPELINE_CONTRACT.md")
        with open(md, "a") as f:
            f.write("\nA staged prose edit.\n")
        git(d, "add", "momentum/docs/PIPELINE_CONTRACT.md")
        cfg = ["--config", "momentum/plumbline.toml"]
        hook = timed([binary, *cfg, "hook", "pre-commit"], d, a.runs)
        check = timed([binary, *cfg, "docs", "--check"], d, a.runs)
    print(f"plumbline hook pre-commit (staged, {a.runs} runs): median {hook[0]:.1f} ms, p90 {hook[1]:.1f} ms, min {hook[2]:.1f} ms")
    print(f"plumbline docs --check    (work tree):        median {check[0]:.1f} ms, p90 {check[1]:.1f} ms, min {check[2]:.1f} ms")
    print(f"budget 20 ms: {'within' if hook[0] <= 20 else 'OVER'}")


if __name__ == "__main__":
    main()
