"""WebSocket conformance: the Autobahn Testsuite (`wstest -m fuzzingclient`)
against Switchboard's echo endpoint (`--ws-echo-path /echo`).

wstest is provided by tests/tools/install-wstest.sh (a private Python 2.7 under
${SWITCHBOARD_TOOLS:-~/.cache/switchboard-tools}/wstest; the first install takes
about half a minute, later runs return at once). $WSTEST may name a wstest
executable to use instead. A missing tool fails the test; it is never skipped.

Groups 1-7, 9 and 10 are run (12 and 13 are permessage-deflate, which the
server does not offer), each group in its own wstest process under a timeout,
so a server that hangs on a case fails the test instead of hanging it.

Outputs: a summary line (printed, and written to target/wstest-summary.txt) and
the HTML/JSON reports under target/wstest-report/<group>/, with the merged
per-case results in target/wstest-report/index.json.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALLER = REPO / "tests" / "tools" / "install-wstest.sh"
TARGET = REPO / "target"
REPORT_DIR = TARGET / "wstest-report"
SUMMARY_FILE = TARGET / "wstest-summary.txt"
AGENT = "switchboard"

GROUPS = ["1", "2", "3", "4", "5", "6", "7", "9", "10"]
# Per-group limits (seconds); group 9 sends messages up to 16 MiB. The whole
# run is also bounded by TOTAL_BUDGET (env WSTEST_TIMEOUT overrides it).
GROUP_TIMEOUT = {"9": 300, "6": 180, "7": 180}
DEFAULT_GROUP_TIMEOUT = 120
TOTAL_BUDGET = float(os.environ.get("WSTEST_TIMEOUT", "600"))
INSTALL_TIMEOUT = 900

# Each case gets one verdict, the worse of its `behavior` and `behaviorClose`,
# graded the way Autobahn's own HTML report colours them: behaviorClose
# "WRONG CODE" and "FAILED BY CLIENT" are yellow (NON-STRICT here), "UNCLEAN"
# and "FAILED" are red (FAILED); any unknown value counts as FAILED.
RANK = ["OK", "INFORMATIONAL", "NON-STRICT", "UNIMPLEMENTED", "FAILED"]
BEHAVIOR = {"OK": "OK", "NON-STRICT": "NON-STRICT", "NO_CLOSE": "NON-STRICT",
            "INFORMATIONAL": "INFORMATIONAL", "UNIMPLEMENTED": "UNIMPLEMENTED"}
BEHAVIOR_CLOSE = {"OK": "OK", "INFORMATIONAL": "INFORMATIONAL", "UNIMPLEMENTED": "UNIMPLEMENTED",
                  "WRONG CODE": "NON-STRICT", "FAILED BY CLIENT": "NON-STRICT"}


def wstest_executable() -> str:
    """Return the wstest to run, installing it first if needed. Fails (never
    skips) when it cannot be provided."""
    override = os.environ.get("WSTEST")
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            pytest.fail(f"$WSTEST={override} is not an executable file")
        return override
    try:
        proc = subprocess.run(
            ["bash", str(INSTALLER)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=INSTALL_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{INSTALLER} did not finish within {INSTALL_TIMEOUT} s")
    if proc.returncode != 0:
        pytest.fail(f"{INSTALLER} failed (exit {proc.returncode}):\n{proc.stdout}")
    # The installer's last line is "install-wstest: wstest ready: PATH".
    ready = re.findall(r"wstest ready: (\S+)", proc.stdout)
    if ready:
        exe = ready[-1]
    else:
        tools = os.environ.get("SWITCHBOARD_TOOLS") or os.path.join(
            os.path.expanduser("~"), ".cache", "switchboard-tools"
        )
        exe = os.path.join(tools, "wstest", "bin", "wstest")
    if not os.access(exe, os.X_OK):
        pytest.fail(f"{INSTALLER} succeeded but {exe} is missing:\n{proc.stdout}")
    return exe


def run_group(wstest: str, url: str, group: str, workdir: Path, timeout: float):
    """Run one case group; return (results dict or None, error message or None)."""
    outdir = workdir / group
    outdir.mkdir(parents=True, exist_ok=True)
    spec = {
        "options": {"failByDrop": True},
        "outdir": str(outdir),
        "servers": [{"agent": AGENT, "url": url}],
        "cases": [f"{group}.*"],
        "exclude-cases": [],
        "exclude-agent-cases": {},
    }
    spec_file = workdir / f"spec-{group}.json"
    spec_file.write_text(json.dumps(spec, indent=2))
    log_file = outdir / "wstest.log"
    with open(log_file, "w") as log:
        proc = subprocess.Popen(
            [wstest, "-m", "fuzzingclient", "-s", str(spec_file)],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None, f"group {group}.* did not finish within {timeout:.0f} s (server hung?)"
    index = outdir / "index.json"
    if not index.exists():
        tail = "".join(log_file.read_text(errors="replace").splitlines(True)[-20:])
        return None, f"group {group}.*: wstest exited {proc.returncode} without a report:\n{tail}"
    results = json.loads(index.read_text()).get(AGENT, {})
    if not results:
        return None, f"group {group}.*: report has no cases for agent {AGENT!r}"
    return results, None


def case_key(case_id: str):
    return tuple(int(p) if p.isdigit() else p for p in case_id.split("."))


def verdict(result: dict) -> str:
    got = [BEHAVIOR.get(result.get("behavior"), "FAILED"),
           BEHAVIOR_CLOSE.get(result.get("behaviorClose"), "FAILED")]
    return max(got, key=RANK.index)


def describe(group_dir: Path, result: dict) -> str:
    try:
        case = json.loads((group_dir / result["reportfile"]).read_text())
        text = case.get("description", "")
        return " ".join(text.replace("<br>", " ").split())[:200]
    except Exception:  # noqa: BLE001 - description is only a hint
        return ""


def test_autobahn_fuzzingclient(echo_server, tmp_path, capsys):
    wstest = wstest_executable()
    url = f"ws://{echo_server.addr}/echo"
    work = tmp_path / "wstest"
    work.mkdir()

    started = time.monotonic()
    deadline = started + TOTAL_BUDGET
    results, group_of, errors = {}, {}, []
    for group in GROUPS:
        remaining = deadline - time.monotonic()
        if remaining <= 1:
            errors.append(f"group {group}.* not run: overall budget of {TOTAL_BUDGET:.0f} s used up")
            continue
        limit = min(GROUP_TIMEOUT.get(group, DEFAULT_GROUP_TIMEOUT), remaining)
        res, err = run_group(wstest, url, group, work, limit)
        if err:
            errors.append(err)
        for case_id, r in (res or {}).items():
            results[case_id] = r
            group_of[case_id] = group
    elapsed = time.monotonic() - started

    # Keep the reports for humans.
    shutil.rmtree(REPORT_DIR, ignore_errors=True)
    REPORT_DIR.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(work, REPORT_DIR)
    (REPORT_DIR / "index.json").write_text(
        json.dumps({AGENT: dict(sorted(results.items(), key=lambda kv: case_key(kv[0])))}, indent=1)
    )

    counts = {b: 0 for b in RANK}
    failed = []
    for case_id in sorted(results, key=case_key):
        r = results[case_id]
        v = verdict(r)
        counts[v] += 1
        if v == "FAILED":
            desc = describe(work / group_of[case_id], r)
            failed.append(
                f"  {case_id}: behavior={r.get('behavior')} behaviorClose={r.get('behaviorClose')}"
                f" remoteCloseCode={r.get('remoteCloseCode')}  {desc}"
            )
    parts = [f"{counts['OK']} OK", f"{counts['NON-STRICT']} NON-STRICT", f"{counts['INFORMATIONAL']} INFORMATIONAL"]
    if counts.get("UNIMPLEMENTED"):
        parts.append(f"{counts['UNIMPLEMENTED']} UNIMPLEMENTED")
    parts.append(f"{len(failed)} FAILED")
    summary = f"autobahn testsuite: {len(results)} cases: " + ", ".join(parts)
    detail = f"autobahn testsuite: groups {','.join(GROUPS)} in {elapsed:.0f} s; report in {REPORT_DIR}"
    if errors:
        detail += f"; {len(errors)} group error(s)"
    SUMMARY_FILE.write_text(summary + "\n" + detail + "\n")
    with capsys.disabled():
        print(f"\n{summary}\n{detail}")

    problems = []
    if errors:
        problems.append("wstest run errors:\n" + "\n".join(errors))
    if failed:
        problems.append(f"{len(failed)} case(s) FAILED:\n" + "\n".join(failed))
    assert not problems, summary + "\n" + "\n\n".join(problems) + f"\n(full report: {REPORT_DIR}/<group>/index.html)"
