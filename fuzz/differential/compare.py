"""Differential test of plumbline's pickle machine against CPython's unpickler, offline over a corpus.

    cargo build --release --manifest-path fuzz/Cargo.toml --bin pickle_globals_dump
    python3 fuzz/differential/compare.py fuzz/corpus/pickle_globals [more dirs...]

For every file, CPython's C `pickle.Unpickler` loads the bytes with `find_class` recording each
(module, name) it is asked for and returning an inert stub class instead of importing anything
(persistent ids and every call give stubs too: nothing runs). plumbline's `referenced_globals`
(fuzz/differential/dump.rs) walks the same bytes. Disagreements:

- missed: plumbline's walk ended "ok" without a global CPython resolved (the dangerous kind);
- different: the n-th global differs (after Python 2 -> 3 name mapping, which either side may apply);
- extra: both ended ok and plumbline saw more globals than CPython.

Files where one side stops with an error earlier are counted, not flagged: plumbline refusing a
stream CPython reads is its fail-closed design. Exit 1 when anything is flagged.
"""

import _compat_pickle
import io
import json
import os
import pickle
import resource
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DUMP = os.path.join(HERE, "..", "target", "x86_64-unknown-linux-gnu", "release", "pickle_globals_dump")
if not os.path.exists(DUMP):
    DUMP = os.path.join(HERE, "..", "target", "release", "pickle_globals_dump")


class Stub:
    def __new__(cls, *a, **k):
        return object.__new__(cls)

    def __init__(self, *a, **k):
        pass

    def __call__(self, *a, **k):
        return Stub()

    def __setstate__(self, state):
        pass

    def __setitem__(self, k, v):
        pass

    def append(self, x):
        pass

    def extend(self, xs):
        pass

    def add(self, x):
        pass


class Recorder(pickle.Unpickler):
    def __init__(self, f):
        super().__init__(f)
        self.seen = []

    def find_class(self, module, name):
        self.seen.append((module, name))
        return type("Global", (Stub,), {})

    def persistent_load(self, pid):
        return Stub()


class Timeout(Exception):
    pass


def on_alarm(*_):
    raise Timeout()


def reference(data):
    r = Recorder(io.BytesIO(data))
    signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, 3)
        try:
            r.load()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        end = "ok"
    except Timeout:
        end = "timeout"
    except BaseException as e:  # noqa: BLE001 - anything the unpickler raises ends the walk
        end = f"error: {type(e).__name__}"
    return r.seen, end


def names(module, name):
    out = {f"{module}.{name}"}
    if (module, name) in _compat_pickle.NAME_MAPPING:
        out.add(".".join(_compat_pickle.NAME_MAPPING[(module, name)]))
    elif module in _compat_pickle.IMPORT_MAPPING:
        out.add(f"{_compat_pickle.IMPORT_MAPPING[module]}.{name}")
    return out


def main():
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    dirs = sys.argv[1:]
    lines = subprocess.run([DUMP, *dirs], check=True, capture_output=True, text=True).stdout.splitlines()
    ours = {}
    for line in lines:
        row = json.loads(line)
        ours[row["file"]] = row
    counts = {"files": 0, "both-ok": 0, "plumbline-only-ok": 0, "cpython-only-ok": 0, "both-stop": 0, "timeout": 0}
    flagged = []
    examples = []
    for d in dirs:
        for fname in sorted(os.listdir(d)):
            with open(os.path.join(d, fname), "rb") as f:
                data = f.read()
            theirs, end = reference(data)
            mine = ours[fname]
            counts["files"] += 1
            p_ok, c_ok = mine["end"] == "ok", end == "ok"
            if end == "timeout":
                counts["timeout"] += 1
            key = "both-ok" if p_ok and c_ok else "plumbline-only-ok" if p_ok else "cpython-only-ok" if c_ok else "both-stop"
            counts[key] += 1
            if key == "plumbline-only-ok" and len(examples) < 5:
                examples.append((fname, end))
            n = min(len(theirs), len(mine["globals"]))
            for i in range(n):
                if mine["globals"][i] not in names(*theirs[i]):
                    flagged.append(("different", fname, i, mine["globals"][i], theirs[i]))
                    break
            else:
                if p_ok and len(theirs) > len(mine["globals"]):
                    flagged.append(("missed", fname, n, None, theirs[n]))
                elif p_ok and c_ok and len(mine["globals"]) > len(theirs):
                    flagged.append(("extra", fname, n, mine["globals"][n], None))
    print(json.dumps(counts))
    for fname, end in examples:
        print("plumbline ok, CPython:", fname, end)
    for f in flagged[:50]:
        print(*f)
    print(f"{len(flagged)} disagreements")
    sys.exit(1 if flagged else 0)


if __name__ == "__main__":
    main()
