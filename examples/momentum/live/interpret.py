"""Live interpreter: the ruleset applied to one row at a time, as the live process does.

LiveInterpreter reads the ruleset once; decide(row) maps one row of head outputs and raw features to an
action. Semantics (ruleset-format 1):
  p = softmax(signal head logits) = exp(x - max) / sum; pl, ps = p of the "long" and "short" classes.
  side = long if pl >= enter-long and pl >= ps; else short if ps >= enter-short; else flat.
  size = 0.0 when flat, else min(max-size, per-unit * |<sizing head>.0|).
  Risk gates, in file order, read "feature.<column>" (raw) or "head.<name>.<k>" (a probability for the
  signal head, the only softmax head a ruleset names; the raw output otherwise). A gate blocks when the
  value is NaN, above block-above or below block-below; any block makes the row flat with size 0.0.

Protocol:  python3 live/interpret.py RULESET INPUTS OUT
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


class LiveInterpreter:
    def __init__(self, ruleset_path):
        with open(ruleset_path, "rb") as f:
            rules = tomllib.load(f)
        if rules.get("ruleset-format") != 1:
            raise ValueError(f"{ruleset_path}: unsupported ruleset-format {rules.get('ruleset-format')!r}")
        signal, sizing = rules["signal"], rules["sizing"]
        self.signal_head = signal["head"]
        self.classes = list(signal["classes"])
        self.i_long, self.i_short = self.classes.index("long"), self.classes.index("short")
        self.enter_long = float(signal["enter-long"])
        self.enter_short = float(signal["enter-short"])
        self.size_column = sizing["head"] + ".0"
        self.per_unit = float(sizing["per-unit"])
        self.max_size = float(sizing["max-size"])
        self.gates = []  # (name, kind, reference, block-above or None, block-below or None)
        for gate in rules.get("risk-gates", []):
            kind, _, ref = gate["reads"].partition(".")
            if kind not in ("feature", "head") or (kind == "head" and ref.count(".") != 1):
                raise ValueError(f"{ruleset_path}: risk gate {gate['name']!r}: bad reads {gate['reads']!r}")
            self.gates.append((gate["name"], kind, ref, gate.get("block-above"), gate.get("block-below")))
        if len({g[0] for g in self.gates}) != len(self.gates):
            raise ValueError(f"{ruleset_path}: risk gate names must be unique")
        self.gate_names = [g[0] for g in self.gates]

    def decide(self, row):
        """row: {column: float} with head outputs and raw features (NaN if unknown) ->
        {"side": ..., "size": ..., "gate.<name>": "pass" | "block", ...}."""
        logits = [row[f"{self.signal_head}.{k}"] for k in range(len(self.classes))]
        magnitude = row[self.size_column]
        if not all(math.isfinite(v) for v in [*logits, magnitude]):
            raise ValueError("head outputs must be finite numbers")
        top = max(logits)
        exps = [math.exp(v - top) for v in logits]
        total = sum(exps)
        probs = [e / total for e in exps]
        pl, ps = probs[self.i_long], probs[self.i_short]
        if pl >= self.enter_long and pl >= ps:
            side = "long"
        elif ps >= self.enter_short:
            side = "short"
        else:
            side = "flat"
        size = 0.0 if side == "flat" else min(self.max_size, self.per_unit * abs(magnitude))

        decision = {}
        for name, kind, ref, above, below in self.gates:
            if kind == "feature":
                value = row[ref]
            else:
                head, k = ref.split(".")
                value = probs[int(k)] if head == self.signal_head else row[ref]
            blocked = math.isnan(value) or (above is not None and value > above) or (below is not None and value < below)
            decision[f"gate.{name}"] = "block" if blocked else "pass"
        if "block" in decision.values():
            side, size = "flat", 0.0
        return {"side": side, "size": size, **decision}


def main(argv):
    if len(argv) != 4:
        raise ValueError("usage: live/interpret.py RULESET INPUTS OUT")
    interp = LiveInterpreter(argv[1])
    with open(argv[2], newline="") as f:
        reader = csv.DictReader(f)
        if not {"timestamp", "symbol"} <= set(reader.fieldnames or []):
            raise ValueError(f"{argv[2]}: needs timestamp and symbol columns")
        rows = []
        for line, r in enumerate(reader, start=2):
            try:
                values = {c: float(v) if v != "" else math.nan for c, v in r.items() if c not in ("timestamp", "symbol")}
                rows.append((int(r["timestamp"]), r["symbol"], values))
            except (TypeError, ValueError) as e:
                raise ValueError(f"{argv[2]}:{line}: {e}") from None
    rows.sort(key=lambda r: (r[0], r[1]))
    gate_cols = [f"gate.{name}" for name in interp.gate_names]
    with open(argv[3], "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["timestamp", "symbol", "side", "size", *gate_cols])
        for ts, sym, values in rows:
            d = interp.decide(values)
            w.writerow([ts, sym, d["side"], repr(float(d["size"])), *(d[c] for c in gate_cols)])


if __name__ == "__main__":
    try:
        main(sys.argv)
    except (OSError, ValueError, KeyError, TypeError, IndexError, tomllib.TOMLDecodeError) as e:
        print(f"live/interpret: {e!r}", file=sys.stderr)
        sys.exit(2)
