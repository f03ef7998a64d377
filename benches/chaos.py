#!/usr/bin/env python3
"""Chaos-test the harness itself (issue 9): kill or stop the controller at 50 seeded
random instants per case and count what is left after the lease + 2 s.

Runs the same test code CI runs (tests/harness_chaos.rs, 5 instants there) with more
instants, on a release build, and tabulates the `chaos:` lines it prints:

    sudo python3 benches/chaos.py                  # 50 instants per case, ~12 minutes
    sudo python3 benches/chaos.py --instants 10    # quicker
    sudo python3 benches/chaos.py --seed 42        # another set of instants

Cases:
  sigkill   the controller SIGKILLed while it holds (or is applying, renewing or
            reverting) an nfqueue latency fault, an nftables blackhole and a pause;
            time = from the kill until nothing is left.
  sigstop   its whole process group SIGSTOPped (Ctrl-Z); a request to the service under
            the latency fault must still be answered while the controller is stopped;
            time = from the stop until nothing is left (the lease is 5 s).
  guardian-sigkill, other-namespace, namespace-gone: once each.

Needs root (network namespaces of its own; nothing outside them is touched). Python 3
stdlib only. Prints a Markdown table for BENCHMARKS.md and writes bench-out/chaos.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LEASE_MS = 5000
SLACK_MS = 2000


def run_tests(instants: int, seed: int | None) -> tuple[int, str]:
    env = dict(os.environ)
    env["SHAKEOUT_CHAOS_INSTANTS"] = str(instants)
    env["SHAKEOUT_CHAOS_KEEP_GOING"] = "1"
    if seed is not None:
        env["SHAKEOUT_CHAOS_SEED"] = str(seed)
    cmd = [
        "cargo", "test", "--release", "--test", "harness_chaos", "--",
        "--nocapture", "--test-threads", "1",
    ]
    print("$", " ".join(cmd), f"(SHAKEOUT_CHAOS_INSTANTS={instants})", file=sys.stderr)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def parse(output: str) -> dict[str, list[dict]]:
    cases: dict[str, list[dict]] = {}
    for line in output.splitlines():
        if not line.startswith("chaos: "):
            continue
        fields = dict(re.findall(r"(\w+)=(\[[^\]]*\]|\S+)", line[len("chaos: "):]))
        fields["_left"] = " LEFT " in line
        cases.setdefault(fields.get("case", "?"), []).append(fields)
    return cases


def summary(rows: list[dict]) -> dict[str, object]:
    per_instant = [r for r in rows if "instant" in r and "revert_ms" in r]
    if not per_instant:
        per_instant = [r for r in rows if "revert_ms" in r]
    times = [int(r["revert_ms"]) for r in per_instant]
    left = [r for r in rows if r.get("_left")]
    held = [r for r in per_instant if r.get("held", "[]") not in ("[]", "")]
    # One-off cases hold their faults by construction (the test waits for them).
    held_shown = len(held) if any("held" in r for r in per_instant) else "all"
    latency = [r["request_under_latency"] for r in per_instant
               if r.get("request_under_latency", "-") not in ("-", "")]
    return {
        "instants": len(per_instant),
        "with_faults_held": held_shown,
        "left_after_lease_plus_2s": len(left),
        "revert_ms_p50": statistics.median(times) if times else None,
        "revert_ms_max": max(times) if times else None,
        "requests_under_latency_answered": latency,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instants", type=int, default=50)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces, nftables, iptables)", file=sys.stderr)
        return 2
    code, output = run_tests(args.instants, args.seed)
    cases = parse(output)
    out = {name: summary(rows) for name, rows in cases.items()}
    (REPO / "bench-out").mkdir(exist_ok=True)
    (REPO / "bench-out/chaos.json").write_text(json.dumps({"cases": out, "exit": code}, indent=2))
    print(f"| case | instants | faults held at the instant | left after lease + 2 s | time to clean p50 | max |")
    print("|---|---|---|---|---|---|")
    for name in ["sigkill", "sigstop", "guardian-sigkill", "other-namespace", "namespace-gone"]:
        s = out.get(name)
        if not s:
            continue
        fmt = lambda v: "-" if v is None else f"{v:.0f} ms"
        print(f"| {name} | {s['instants'] or 1} | {s['with_faults_held']} | {s['left_after_lease_plus_2s']} "
              f"| {fmt(s['revert_ms_p50'])} | {fmt(s['revert_ms_max'])} |")
    stop = out.get("sigstop", {})
    answered = stop.get("requests_under_latency_answered") or []
    if answered:
        print(f"\nWhile stopped under the latency fault, {len(answered)} of {len(answered)} requests were answered "
              f"(latency, not a blackhole): {', '.join(answered)}")
    if code != 0:
        print("\nthe test run FAILED; its output:\n" + output[-4000:], file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
