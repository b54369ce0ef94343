#!/usr/bin/env python3
"""Runs the steps of action.yml as the runner would, against local fakes (docs/action.md#how-it-is-tested).

* `install`: against a fake release this script builds (file:// URLs through PLUMBLINE_RELEASE_BASE_URL):
  a tarball or zip per target holding a tiny `plumbline` shell script, and a SHA256SUMS. A good release
  must install on all six platforms (the binary on GITHUB_PATH runs and is the right target's); a release
  whose SHA256SUMS has a wrong checksum must fail the step with the mismatch message and put nothing on
  GITHUB_PATH; a missing release, an unknown platform and `version: source` fall back to a fake `cargo`
  (a real one is never run), a missing pinned release and a malformed version fail.
* `base`: fetches the base commit into a shallow clone of a local repository.
* `run`: the command line the inputs make, with a fake `plumbline` that records its arguments.

Also: every `run:` script is `shell: bash`, parses (`bash -n`), and holds no `${{ }}` expression (inputs
reach scripts through `env:`; an expression inside a script is a script-injection risk).

Exit 0 when everything holds, 1 (with what failed) otherwise, 77 when PyYAML or curl is missing (skip).
Usage: python3 tests/action/run_install_step.py [path/to/action.yml]
"""

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

try:
    import yaml
except ImportError:
    print("skipped: PyYAML is not installed (pip install pyyaml, or pre-commit which brings it)")
    sys.exit(77)

if shutil.which("curl") is None:
    print("skipped: curl is not on PATH (the install step downloads with it)")
    sys.exit(77)
if shutil.which("bash") is None:
    print("skipped: bash is not on PATH")
    sys.exit(77)

REPO = Path(__file__).resolve().parents[2]
ACTION = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "action.yml"

PLATFORMS = {
    ("Linux", "X64"): "x86_64-unknown-linux-gnu",
    ("Linux", "ARM64"): "aarch64-unknown-linux-gnu",
    ("macOS", "X64"): "x86_64-apple-darwin",
    ("macOS", "ARM64"): "aarch64-apple-darwin",
    ("Windows", "X64"): "x86_64-pc-windows-msvc",
    ("Windows", "ARM64"): "aarch64-pc-windows-msvc",
}

failures = []


def check(ok, what, detail=""):
    print(("ok      " if ok else "FAILED  ") + what)
    if not ok:
        failures.append(what + (("\n" + detail) if detail else ""))
    return ok


# --- action.yml, statically -------------------------------------------------------------------------

with open(ACTION, encoding="utf-8") as f:
    action = yaml.safe_load(f)
steps = action["runs"]["steps"]
by_id = {s["id"]: s for s in steps if "id" in s}
check(action["runs"]["using"] == "composite", "action.yml is a composite action")
for name in ("install", "base", "run"):
    check(name in by_id, f"action.yml has a step with id `{name}`")
if failures:
    print("\n".join(failures))
    sys.exit(1)
for s in steps:
    if "run" not in s:
        continue
    label = s.get("id", s.get("name", "?"))
    check(s.get("shell") == "bash", f"step `{label}` runs with shell: bash")
    check("${{" not in s["run"], f"step `{label}`'s script holds no ${{{{ }}}} expression (inputs go through env:)")
    r = subprocess.run(["bash", "-n"], input=s["run"], text=True, capture_output=True)
    check(r.returncode == 0, f"step `{label}`'s script parses (bash -n)", r.stderr)
for name, out in action.get("outputs", {}).items():
    m = re.fullmatch(r"\$\{\{\s*steps\.([A-Za-z0-9_-]+)\.outputs\.[A-Za-z0-9_-]+\s*\}\}", out["value"])
    check(bool(m) and m.group(1) in by_id, f"output `{name}` maps a step's output")

DEFAULTS = {k: str(v.get("default", "")) for k, v in action.get("inputs", {}).items()}
EXPR = re.compile(r"^\$\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}$")


def step_env(step, context):
    """The step's `env:` as the runner would evaluate it, for the expressions the action uses."""
    env = {}
    for key, value in (step.get("env") or {}).items():
        value = str(value)
        m = EXPR.match(value)
        if m:
            node = context
            for part in m.group(1).split("."):
                if not isinstance(node, dict) or part not in node:
                    raise SystemExit(f"step `{step.get('id')}`: env {key}: this driver cannot evaluate {value}")
                node = node[part]
            value = str(node)
        elif "${{" in value:
            raise SystemExit(f"step `{step.get('id')}`: env {key}: this driver cannot evaluate {value}")
        env[key] = value
    return env


def base_env(tmp):
    """The process environment without the caller's GITHUB_*/RUNNER_* (a test inside Actions must not
    write to the real GITHUB_PATH or GITHUB_OUTPUT)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GITHUB_", "RUNNER_", "PLUMBLINE_", "INPUT_"))
    }
    runner_temp = tmp / "runner_temp"
    runner_temp.mkdir(parents=True)
    for name in ("path", "output", "summary"):
        (tmp / name).write_text("")
    env.update(
        RUNNER_TEMP=str(runner_temp),
        GITHUB_PATH=str(tmp / "path"),
        GITHUB_OUTPUT=str(tmp / "output"),
        GITHUB_STEP_SUMMARY=str(tmp / "summary"),
        GITHUB_WORKSPACE=str(tmp),
    )
    return env


def run_step(step, env, cwd):
    script = cwd / f"step-{step['id']}.sh"
    script.write_text(step["run"])
    # How the runner runs `shell: bash`.
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def outputs(path):
    out = {}
    for line in Path(path).read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def shown(r):
    return f"exit {r.returncode}\n--- stdout\n{r.stdout}--- stderr\n{r.stderr}"


# --- the fake release -----------------------------------------------------------------------------------


def fake_binary(target):
    return f'#!/bin/sh\necho "plumbline 0.1.0-fake {target}"\n'.encode()


def archive(target):
    """plumbline-<target>.tar.gz (.zip on Windows) holding plumbline-<target>/plumbline[.exe]."""
    windows = "windows" in target
    exe = "plumbline.exe" if windows else "plumbline"
    inner = f"plumbline-{target}/{exe}"
    data = fake_binary(target)
    buf = io.BytesIO()
    if windows:
        with zipfile.ZipFile(buf, "w") as z:
            info = zipfile.ZipInfo(inner)
            info.external_attr = 0o100755 << 16
            z.writestr(info, data)
        return f"plumbline-{target}.zip", buf.getvalue()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, body in ((inner, data), (f"plumbline-{target}/README.md", b"fake\n")):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            info.mode = 0o755
            t.addfile(info, io.BytesIO(body))
    return f"plumbline-{target}.tar.gz", buf.getvalue()


def release(directory, *, corrupt=None, omit=None):
    """A release directory: every target's archive and a SHA256SUMS (sha256sum's format). `corrupt`: a
    target whose checksum line is wrong; `omit`: a target left out of SHA256SUMS."""
    directory.mkdir(parents=True)
    sums = []
    for target in PLATFORMS.values():
        name, data = archive(target)
        (directory / name).write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        if target == corrupt:
            digest = hashlib.sha256(data + b"tampered").hexdigest()
        if target != omit:
            sums.append(f"{digest}  {name}\n")
    (directory / "SHA256SUMS").write_text("".join(sums))


# --- the install step -----------------------------------------------------------------------------------

FAKE_CARGO = """#!/bin/sh
# Stands in for cargo: records the arguments, installs a fake plumbline under --root.
printf '%s\\n' "$@" >"$FAKE_CARGO_LOG"
root=""
prev=""
for a in "$@"; do
  if [ "$prev" = --root ]; then root="$a"; fi
  prev="$a"
done
mkdir -p "$root/bin"
printf '#!/bin/sh\\necho "plumbline 0.1.0-from-source"\\n' >"$root/bin/plumbline"
chmod +x "$root/bin/plumbline"
"""


def install(work, name, *, base_url, os_name="Linux", arch="X64", version=None):
    tmp = work / name
    tmp.mkdir()
    env = base_env(tmp)
    fakebin = tmp / "fakebin"
    fakebin.mkdir()
    (fakebin / "cargo").write_text(FAKE_CARGO)
    (fakebin / "cargo").chmod(0o755)
    action_path = tmp / "action"
    action_path.mkdir()
    env.update(
        PATH=f"{fakebin}{os.pathsep}{os.environ['PATH']}",
        RUNNER_OS=os_name,
        RUNNER_ARCH=arch,
        GITHUB_ACTION_PATH=str(action_path),
        PLUMBLINE_RELEASE_BASE_URL=base_url,
        FAKE_CARGO_LOG=str(tmp / "cargo.log"),
    )
    inputs = dict(DEFAULTS)
    if version is not None:
        inputs["version"] = version
    env.update(step_env(by_id["install"], {"inputs": inputs}))
    r = run_step(by_id["install"], env, tmp)
    cargo = (tmp / "cargo.log").read_text().split("\n")[:-1] if (tmp / "cargo.log").exists() else None
    return r, tmp, env, cargo


def installed_binary(r, tmp, expect, what):
    """The step succeeded, GITHUB_PATH holds a directory whose plumbline runs and prints `expect`."""
    if not check(r.returncode == 0, f"{what}: the step succeeds", shown(r)):
        return
    dirs = [line for line in (tmp / "path").read_text().splitlines() if line]
    if not check(len(dirs) == 1, f"{what}: one directory on GITHUB_PATH", repr(dirs)):
        return
    path = os.pathsep.join(dirs + [os.environ["PATH"]])
    found = shutil.which("plumbline", path=path) or shutil.which("plumbline.exe", path=path)
    check(
        found is not None and Path(found).parent == Path(dirs[0]),
        f"{what}: plumbline on the new PATH is the installed one",
        repr(found),
    )
    if found is None:
        return
    v = subprocess.run([found, "--version"], capture_output=True, text=True)
    check(v.returncode == 0 and expect in v.stdout, f"{what}: the installed plumbline runs ({v.stdout.strip()})", shown(v))
    out = outputs(tmp / "output")
    check(Path(out.get("bin", "")) == Path(found), f"{what}: the `bin` output is the binary", repr(out))
    check(expect in out.get("version", ""), f"{what}: the `version` output", repr(out))


def failed(r, tmp, message, what):
    check(r.returncode != 0, f"{what}: the step fails", shown(r))
    check(message in r.stdout, f"{what}: it says `{message}`", shown(r))
    check((tmp / "path").read_text() == "", f"{what}: nothing is added to GITHUB_PATH", (tmp / "path").read_text())


def test_install(work):
    releases = work / "releases"
    release(releases / "download" / "v0.1.0")
    shutil.copytree(releases / "download" / "v0.1.0", releases / "latest" / "download")
    release(releases / "download" / "v0.1.1", corrupt="x86_64-unknown-linux-gnu")
    release(releases / "download" / "v0.1.2", omit="x86_64-unknown-linux-gnu")
    base = releases.as_uri()
    empty = work / "no-releases"
    empty.mkdir()

    # Good checksums: a pinned tag on every platform (the zip needs unzip, 7z or pwsh, as on Windows).
    can_unzip = any(shutil.which(t) for t in ("unzip", "7z", "pwsh"))
    for (os_name, arch), target in PLATFORMS.items():
        if "windows" in target and not can_unzip:
            print(f"skipped {os_name}/{arch}: no unzip, 7z or pwsh on this machine to open the .zip")
            continue
        r, tmp, _, cargo = install(work, f"good-{os_name}-{arch}", base_url=base, os_name=os_name, arch=arch, version="v0.1.0")
        installed_binary(r, tmp, f"0.1.0-fake {target}", f"v0.1.0 on {os_name}/{arch}")
        check(cargo is None, f"v0.1.0 on {os_name}/{arch}: cargo is not run", repr(cargo))
        check("matches SHA256SUMS" in r.stdout, f"v0.1.0 on {os_name}/{arch}: the checksum is checked", shown(r))

    r, tmp, _, cargo = install(work, "good-latest", base_url=base)
    installed_binary(r, tmp, "0.1.0-fake x86_64-unknown-linux-gnu", "the default version (latest)")
    r, tmp, _, _ = install(work, "good-bare", base_url=base, version="0.1.0")
    installed_binary(r, tmp, "0.1.0-fake x86_64-unknown-linux-gnu", "version 0.1.0 (no v)")

    # A bad checksum fails the step, whatever else.
    r, tmp, _, cargo = install(work, "bad-checksum", base_url=base, version="v0.1.1")
    failed(r, tmp, "checksum mismatch for plumbline-x86_64-unknown-linux-gnu.tar.gz", "a wrong checksum")
    check(cargo is None, "a wrong checksum: no fallback to cargo", repr(cargo))
    check(
        "::error title=plumbline install::" in r.stdout,
        "a wrong checksum: an error annotation",
        shown(r),
    )
    # The same release is fine for a target whose checksum is right.
    r, tmp, _, _ = install(work, "bad-other", base_url=base, os_name="macOS", arch="ARM64", version="v0.1.1")
    installed_binary(r, tmp, "0.1.0-fake aarch64-apple-darwin", "v0.1.1 on macOS/ARM64 (its checksum is right)")

    # Fallbacks to `cargo install --locked` from the action's source.
    def from_source(r, tmp, cargo, what):
        installed_binary(r, tmp, "0.1.0-from-source", what)
        want = [
            "install",
            "--locked",
            "--path",
            str(tmp / "action"),
            "--root",
            str(tmp / "runner_temp" / "plumbline-action" / "source"),
        ]
        check(cargo == want, f"{what}: cargo install --locked --path $GITHUB_ACTION_PATH", f"{cargo!r}\n!=\n{want!r}")
        check("::warning title=plumbline install::" in r.stdout, f"{what}: a warning says why", shown(r))

    r, tmp, _, cargo = install(work, "source", base_url=base, version="source")
    from_source(r, tmp, cargo, "version: source")
    r, tmp, _, cargo = install(work, "no-release", base_url=empty.as_uri())
    from_source(r, tmp, cargo, "latest without any release")
    r, tmp, _, cargo = install(work, "unknown-platform", base_url=base, arch="X86", version="v0.1.0")
    from_source(r, tmp, cargo, "a platform without a release binary (Linux/X86)")
    r, tmp, _, cargo = install(work, "not-in-sums", base_url=base, version="v0.1.2")
    from_source(r, tmp, cargo, "a release without this platform's binary")

    # Failures.
    r, tmp, _, cargo = install(work, "missing-tag", base_url=base, version="v9.9.9")
    failed(r, tmp, "no release v9.9.9", "a pinned release that does not exist")
    check(cargo is None, "a pinned release that does not exist: no fallback to cargo", repr(cargo))
    r, tmp, _, cargo = install(work, "bad-version", base_url=base, version="../../etc")
    failed(r, tmp, "version must be latest, source or a release tag", "a malformed version")


# --- the base step --------------------------------------------------------------------------------------


def git(*args, cwd):
    r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"git {' '.join(args)}: {r.stderr}")
    return r.stdout.strip()


def test_base(work):
    if shutil.which("git") is None:
        print("skipped the base step: git is not on PATH")
        return
    origin = work / "origin"
    origin.mkdir()
    ident = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    git("init", "-q", cwd=origin)
    (origin / "a").write_text("base\n")
    git("add", "a", cwd=origin)
    git(*ident, "commit", "-q", "-m", "base", cwd=origin)
    base_sha = git("rev-parse", "HEAD", cwd=origin)
    (origin / "a").write_text("head\n")
    git(*ident, "commit", "-q", "-am", "head", cwd=origin)

    # (shallow, the base input, the event's pull_request.base.sha)
    cases = [
        (True, "", base_sha, "a shallow checkout"),
        (False, "", base_sha, "a full checkout"),
        (True, base_sha, "", "a shallow checkout, the base input (a push)"),
    ]
    for n, (shallow, base_input, event_sha, what) in enumerate(cases):
        tmp = work / f"base-{n}"
        tmp.mkdir()
        env = base_env(tmp)
        ws = tmp / "ws"
        depth = ["--depth=1"] if shallow else []
        git("clone", "-q", *depth, origin.as_uri(), str(ws), cwd=tmp)
        present = subprocess.run(["git", "cat-file", "-e", f"{base_sha}^{{commit}}"], cwd=ws, capture_output=True).returncode == 0
        check(present != shallow, f"the base step, {what}: the base commit is {'missing' if shallow else 'there'} before")
        context = {
            "inputs": dict(DEFAULTS, base=base_input),
            "github": {"event": {"pull_request": {"base": {"sha": event_sha}}}},
        }
        env.update(step_env(by_id["base"], context))
        r = run_step(by_id["base"], env, ws)
        check(r.returncode == 0, f"the base step, {what}: succeeds", shown(r))
        present = subprocess.run(["git", "cat-file", "-e", f"{base_sha}^{{commit}}"], cwd=ws, capture_output=True).returncode == 0
        check(present, f"the base step, {what}: the base commit is there after", shown(r))
        if shallow:
            check("fetched the base commit" in r.stdout, f"the base step, {what}: says it fetched", shown(r))

    tmp = work / "base-unreachable"
    tmp.mkdir()
    env = base_env(tmp)
    ws = tmp / "ws"
    git("clone", "-q", "--depth=1", origin.as_uri(), str(ws), cwd=tmp)
    context = {"inputs": DEFAULTS, "github": {"event": {"pull_request": {"base": {"sha": "0" * 40}}}}}
    env.update(step_env(by_id["base"], context))
    r = run_step(by_id["base"], env, ws)
    check(r.returncode == 0, "the base step, an unfetchable commit: still succeeds", shown(r))
    check("::warning title=plumbline::could not fetch" in r.stdout, "the base step, an unfetchable commit: a warning", shown(r))

    context = {"inputs": dict(DEFAULTS, base="main; touch pwned"), "github": {"event": {"pull_request": {"base": {"sha": ""}}}}}
    env.update(step_env(by_id["base"], context))
    r = run_step(by_id["base"], env, ws)
    check(
        r.returncode == 0 and "not a commit id: not fetching it" in r.stdout and not (ws / "pwned").exists(),
        "the base step, a base that is a name: not fetched, said so",
        shown(r),
    )


# --- the run step ---------------------------------------------------------------------------------------

FAKE_PLUMBLINE = """#!/bin/sh
printf '%s\\n' "$@" >"$FAKE_ARGS_LOG"
printf '%s' "${GITHUB_TOKEN-<unset>}" >"$FAKE_TOKEN_LOG"
exit "${FAKE_EXIT:-0}"
"""


def test_run(work):
    n = 0

    def run(inputs, exit_code=0):
        nonlocal n
        n += 1
        tmp = work / f"run-{n}"
        tmp.mkdir()
        env = base_env(tmp)
        fake = tmp / "plumbline"
        fake.write_text(FAKE_PLUMBLINE)
        fake.chmod(0o755)
        env.update(FAKE_ARGS_LOG=str(tmp / "args"), FAKE_TOKEN_LOG=str(tmp / "token"), FAKE_EXIT=str(exit_code))
        values = dict(DEFAULTS, token="ghs_test_token")
        values.update(inputs)
        context = {"inputs": values, "steps": {"install": {"outputs": {"bin": str(fake)}}}}
        env.update(step_env(by_id["run"], context))
        r = run_step(by_id["run"], env, tmp)
        args = (tmp / "args").read_text().split("\n")[:-1] if (tmp / "args").exists() else None
        token = (tmp / "token").read_text() if (tmp / "token").exists() else None
        return r, args, token

    r, args, token = run({})
    want = ["--config", "plumbline.toml", "--fail-on", "error", "ci", "--check-name", "plumbline"]
    check(r.returncode == 0 and args == want, "the run step, default inputs: the command line", f"{args!r}\n{shown(r)}")
    check(token == "ghs_test_token", "the run step: GITHUB_TOKEN is the token input", repr(token))
    check("ghs_test_token" not in r.stdout + r.stderr, "the run step: the token is not printed")

    r, args, _ = run(
        {
            "config": "examples/momentum/plumbline.toml",
            "profile": "pre-live",
            "fail-on": "warning",
            "base": "origin/main",
            "comment": "false",
            "check-run": "false",
            "check-name": "plumbline (pre-live)",
            "report": "out/report.json",
            "markdown": "out/report.md",
            "sarif": "out/plumbline.sarif",
            "allow-untrusted-commands": "true",
        }
    )
    want = [
        "--config", "examples/momentum/plumbline.toml", "--fail-on", "warning", "--base", "origin/main",
        "--format", "human", "--output", "-",
        "--format", "markdown", "--output", "out/report.md",
        "--format", "sarif", "--output", "out/plumbline.sarif",
        "ci", "--check-name", "plumbline (pre-live)", "--profile", "pre-live", "--report", "out/report.json",
        "--no-comment", "--no-check-run", "--allow-untrusted-commands",
    ]  # fmt: skip
    check(r.returncode == 0 and args == want, "the run step, every input set: the command line", f"{args!r}\n!=\n{want!r}\n{shown(r)}")
    check((work / f"run-{n}" / "out").is_dir(), "the run step: the output files' directory is made")

    r, args, _ = run({"config": "a config; $(touch pwned)"})
    check(
        args is not None and args[1] == "a config; $(touch pwned)" and not (work / f"run-{n}" / "pwned").exists(),
        "the run step: an input is one argument, never shell code",
        repr(args),
    )

    r, _, _ = run({}, exit_code=1)
    check(r.returncode == 1, "the run step: plumbline's exit code is the step's (1)", shown(r))
    r, args, _ = run({"comment": "yes"})
    check(r.returncode != 0 and args is None, "the run step: comment: yes is refused", shown(r))
    check("input comment must be true or false" in r.stdout, "the run step: it says why", shown(r))


def main():
    with tempfile.TemporaryDirectory(prefix="plumbline-action-") as d:
        work = Path(d)
        for test in (test_install, test_base, test_run):
            (work / test.__name__).mkdir()
            test(work / test.__name__)
    if failures:
        print(f"\n{len(failures)} check(s) failed:\n")
        for f in failures:
            print(f"--- {f}\n")
        sys.exit(1)
    print("\naction.yml: every check passed")


if __name__ == "__main__":
    main()
