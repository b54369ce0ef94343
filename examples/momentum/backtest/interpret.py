"""Backtest interpreter: turn model outputs into actions with the ruleset, vectorised over all rows.

Semantics (ruleset-format 1):
  p = softmax(signal head logits) = exp(x - max) / sum; pl, ps = p of the "long" and "short" classes.
  side = long if pl >= enter-long and pl >= ps; else short if ps >= enter-short; else flat.
  size = 0.0 when flat, else min(max-size, per-unit * |<sizing head>.0|).
  Each risk gate reads "feature.<column>" (raw) or "head.<name>.<k>" (a probability for the signal head,
  the only softmax head a ruleset names; the raw output otherwise) and blocks when the value is NaN,
  above block-above or below block-below. Any block makes the row flat with size 0.0.

Protocol:  python3 backtest/interpret.py RULESET INPUTS OUT
  RULESET  ruleset.toml.
  INPUTS   CSV timestamp,symbol,<head>.<k> (raw head outputs)...,<feature columns (raw)>; empty cell = NaN.
  OUT      CSV timestamp,symbol,side,size,gate.<name> per risk gate in ruleset order (pass/block),
           rows sorted by (timestamp, symbol).
Exits 2 with a message on stderr on bad input.
"""

import csv
import math
import sys
import tomllib

import numpy as np


def load_ruleset(path):
    with open(path, "rb") as f:
        rs = tomllib.load(f)
    if rs.get("ruleset-format") != 1:
        raise ValueError(f"{path}: unsupported ruleset-format {rs.get('ruleset-format')!r}")
    sig, siz = rs["signal"], rs["sizing"]
    names = [g["name"] for g in rs.get("risk-gates", [])]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: risk gate names must be unique")
    for gate in rs.get("risk-gates", []):
        kind = gate["reads"].split(".")[0]
        if kind not in ("feature", "head") or (kind == "head" and gate["reads"].count(".") != 2):
            raise ValueError(f"{path}: risk gate {gate['name']!r}: bad reads {gate['reads']!r}")
    return sig, siz, rs.get("risk-gates", [])


def read_table(path):
    """(keys [(timestamp, symbol)], {column: float64 array}) with rows sorted by (timestamp, symbol)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not {"timestamp", "symbol"} <= set(reader.fieldnames or []):
            raise ValueError(f"{path}: needs timestamp and symbol columns")
        cols = [c for c in reader.fieldnames if c not in ("timestamp", "symbol")]
        rows = []
        for line, r in enumerate(reader, start=2):
            try:
                rows.append(((int(r["timestamp"]), r["symbol"]), [float(r[c]) if r[c] else math.nan for c in cols]))
            except (TypeError, ValueError) as e:
                raise ValueError(f"{path}:{line}: {e}") from None
    rows.sort(key=lambda r: r[0])
    data = np.array([v for _, v in rows], dtype=np.float64).reshape(len(rows), len(cols))
    return [k for k, _ in rows], {c: data[:, j] for j, c in enumerate(cols)}


def interpret(sig, siz, gates, table):
    """(side array of str, size array, {gate name: blocked bool array})."""

    def column(name):
        if name not in table:
            raise ValueError(f"inputs have no column {name!r}")
        return table[name]

    classes = list(sig["classes"])
    logits = np.column_stack([column(f"{sig['head']}.{k}") for k in range(len(classes))])
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = z / z.sum(axis=1, keepdims=True)
    pl, ps = p[:, classes.index("long")], p[:, classes.index("short")]
    side = np.where((pl >= sig["enter-long"]) & (pl >= ps), "long", np.where(ps >= sig["enter-short"], "short", "flat"))
    mag = column(f"{siz['head']}.0")
    if not (np.isfinite(logits).all() and np.isfinite(mag).all()):
        raise ValueError("head outputs must be finite numbers")
    size = np.where(side == "flat", 0.0, np.minimum(siz["max-size"], siz["per-unit"] * np.abs(mag)))

    blocked = {}
    for gate in gates:
        kind, _, ref = gate["reads"].partition(".")
        if kind == "feature":
            value = column(ref)
        else:
            head, k = ref.split(".")
            value = p[:, int(k)] if head == sig["head"] else column(ref)
        block = np.isnan(value)
        if "block-above" in gate:
            block |= value > gate["block-above"]
        if "block-below" in gate:
            block |= value < gate["block-below"]
        blocked[gate["name"]] = block
    if blocked:
        any_block = np.logical_or.reduce(list(blocked.values()))
        side[any_block] = "flat"
        size[any_block] = 0.0
    return side, size, blocked


def main(argv):
    if len(argv) != 4:
        raise ValueError("usage: backtest/interpret.py RULESET INPUTS OUT")
    sig, siz, gates = load_ruleset(argv[1])
    keys, table = read_table(argv[2])
    side, size, blocked = interpret(sig, siz, gates, table)
    with open(argv[3], "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["timestamp", "symbol", "side", "size", *(f"gate.{g['name']}" for g in gates)])
        for i, (ts, sym) in enumerate(keys):
            decisions = ("block" if blocked[g["name"]][i] else "pass" for g in gates)
            w.writerow([ts, sym, side[i], repr(float(size[i])), *decisions])


if __name__ == "__main__":
    try:
        main(sys.argv)
    except (OSError, ValueError, KeyError, TypeError, IndexError, tomllib.TOMLDecodeError) as e:
        print(f"backtest/interpret: {e!r}", file=sys.stderr)
        sys.exit(2)
