#!/usr/bin/env python3
"""Benchmark `shakeout validate` on hostile experiment files: every case within 1 s and
64 MiB peak RSS (release build).

Generates the corpus tests/hostile_yaml.rs checks (the same names and shapes, each file
at most 1 MiB: alias fan-out, billion laughs, nested brackets and indentation, 1 MiB
scalars and flat files, many documents, and the largest files the limits accept), runs
the release binary on each file N times, and prints a Markdown table: bytes, exit code,
max wall time, max peak RSS, PASS/FAIL, and the diagnostic's position and reason.

    python3 benches/hostile_yaml.py              # builds target/release/shakeout, 5 runs
    python3 benches/hostile_yaml.py --runs 20 --no-build

Peak RSS per run comes from GNU time (`/usr/bin/time -f %M`), which forks the binary from
its own small process: a child forked from this Python would inherit Python's high-water
mark (Linux keeps ru_maxrss across exec). Wall time is measured here around each run
(it includes GNU time's own fork, about a millisecond).

Python 3.9+, stdlib only. Exits 1 if any case fails a goal or the expected exit code.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHAKEOUT = REPO / "target/release/shakeout"
TIME = "/usr/bin/time"
MIB = 1 << 20
HEAD = "apiVersion: shakeout/v1\nkind: Experiment\n"

# Goals from issue 9.
GOALS = {"wall_s": 1.0, "rss_mib": 64.0}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# the corpus (mirrors `case` in tests/hostile_yaml.rs)


def fill(prefix: str, unit: str, suffix: str) -> str:
    n = (MIB - len(prefix) - len(suffix)) // len(unit)
    return prefix + unit * n + suffix


def lines(prefix: str, line) -> str:
    parts, size, i = [prefix], len(prefix), 0
    while True:
        nxt = line(i)
        if size + len(nxt) > MIB:
            return "".join(parts)
        parts.append(nxt)
        size += len(nxt)
        i += 1


def nested(open_: str, close: str) -> str:
    n = (MIB - 2) // (len(open_) + len(close))
    return open_ * n + "1" + close * n


def billion_laughs() -> str:
    text = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"]
    for i in range(1, 10):
        text.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n")
    return "".join(text)


def long_paths() -> str:
    keys = "".join("  " * d + f"{d:04d}" + "k" * 996 + ":\n" for d in range(63))
    return lines(keys, lambda i: " " * 126 + f"c{i}: 1\n")


def fault_list(item: str) -> str:
    head = (HEAD + "metadata: {name: x}\nspec:\n  duration: 1m\n  probes:\n"
            '    - {name: web, rate: 10/s, http: {url: "http://127.0.0.1:1/"}}\n  faults:\n')
    return head + item * 4_800


def corpus() -> dict[str, str]:
    anchor_2000 = "anc: &a [" + ",".join(["x"] * 2000) + "]\n"
    return {
        # shapes the limits refuse
        "alias_fanout": anchor_2000 + "".join(f"k{i}: *a\n" for i in range(12_000)),
        "billion_laughs": billion_laughs(),
        "recursive_alias": "a: &a [1, *a]\n",
        "many_aliases": lines("a: &a 1\n", lambda i: f"k{i}: *a\n"),
        "many_anchors": lines("", lambda i: f"k{i}: &a{i} 1\n"),
        "flow_seq_open": fill("", "[", ""),
        "flow_seq_closed": nested("[", "]"),
        "flow_map_open": fill("", "{a: ", ""),
        "flow_map_closed": nested("{a: ", "}"),
        "block_seq_inline": fill("", "- ", ""),
        "question_keys": fill("", "? ", ""),
        "block_map_indent": lines("", lambda d: "  " * d + "a:\n"),
        "block_seq_indent": lines("", lambda d: "  " * d + "-\n"),
        "nested_flow_in_block_seq": fill("", "- [", ""),
        "tiny_keys": lines("", lambda i: f"k{i}: 1\n"),
        "flat_block_seq": fill("", "- 1\n", ""),
        "flat_flow_seq": fill("x: [", "1,", "1]\n"),
        "flat_flow_in_flow": fill("[[", "1,", "1]]\n"),
        "scalar_plain_1mib": fill("x: ", "a", "\n"),
        "scalar_quoted_1mib": fill('x: "', "a", '"\n'),
        "scalar_block_1mib": fill("x: |\n", "  " + "a" * 38 + "\n", ""),
        "single_line": fill("x: ", "a b ", "\n"),
        "escapes": fill('x: "', "\\\\", '"\n'),
        "unicode_escapes": fill('x: "', "\\u0041", '"\n'),
        "long_key": "k" * (MIB - 5) + ": 1\n",
        "many_documents": fill("", "---\n", ""),
        "documents_with_content": fill("", "--- [1]\n", ""),
        "comments": fill("", "# comment comment comment\n", ""),
        "blank_lines": fill("", "\n", ""),
        "tabs": fill("", "\t", ""),
        "garbage": "".join(chr(33 + (i * 7919) % 90) for i in range(MIB)),
        # the largest files within the limits: serde_yaml reads all of them
        "max_labels": HEAD + "metadata:\n  name: x\n  labels:\n"
        + "".join(f"    k{i}: v\n" for i in range(24_990)),
        "max_aliases": "a: &a [" + ",".join(["1"] * 48) + "]\nb:\n" + "- *a\n" * 1000,
        "max_depth_flow": ("- " + "[" * 63 + "1" + "]" * 63 + "\n") * (49_500 // 65),
        "max_depth_map": ("- " + "{a: " * 63 + "1" + "}" * 63 + "\n") * (49_500 // 128),
        "max_long_paths": long_paths(),
        "max_lookahead": "[[" + "1234567," * 16_000 + "1]]\n",
        "max_scalars": "".join(f"k{i}: " + "a" * 120_000 + "\n" for i in range(8)),
        "comment_then_document": "# " + "c" * (MIB - 200) + "\n" + HEAD + "metadata: {name: x}\n",
        "max_faults": fault_list('    - {name: f, at: 90s, exec: {command: ["true"]}}\n'),
        "max_faults_named_alike": fault_list('    - {name: p, at: 10s, exec: {command: ["true"]}}\n'),
    }


# ---------------------------------------------------------------------------------------
# measurement


def run_once(binary: Path, file: Path, timeout_s: float) -> dict:
    """One `shakeout validate FILE` under GNU time: exit code, wall, peak RSS, stderr."""
    with tempfile.NamedTemporaryFile(prefix="rss-") as rss:
        t0 = time.monotonic()
        try:
            p = subprocess.run([TIME, "-f", "%M", "-o", rss.name, str(binary), "validate", str(file)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, timeout=timeout_s)
            rc, err = p.returncode, p.stderr.decode(errors="replace")
        except subprocess.TimeoutExpired:
            rc, err = None, f"killed after {timeout_s} s"
        wall = time.monotonic() - t0
        fields = Path(rss.name).read_text().split()
    # GNU time writes "Command exited with non-zero status N" before the value.
    rss_kib = float(fields[-1]) if fields and fields[-1].isdigit() else None
    return {"rc": rc, "wall_s": wall, "rss_mib": rss_kib / 1024 if rss_kib else None,
            "stderr": err}


def diagnostic(stderr: str, file: Path) -> str:
    """`LINE:COL: reason` from the first line, shortened for the table."""
    first = stderr.splitlines()[0] if stderr else ""
    m = re.match(re.escape(str(file)) + r":(\d+):(\d+): (.*)", first)
    if not m:
        return "(no positioned diagnostic) " + first[:60]
    reason = m.group(3)
    if len(reason) > 70:
        reason = reason[:67] + "..."
    return f"{m.group(1)}:{m.group(2)}: {reason}".replace("|", "\\|")


def machine_note() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores ({model}), load average {load}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per case (default 5)")
    ap.add_argument("--binary", type=Path, default=SHAKEOUT, help="shakeout binary to measure")
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build --release")
    ap.add_argument("--timeout", type=float, default=60.0, help="kill a run after this many seconds")
    args = ap.parse_args()

    if not Path(TIME).exists():
        log(f"{TIME} is missing: install GNU time (Debian package `time`)")
        return 2
    if not args.no_build:
        log("cargo build --release --bin shakeout")
        subprocess.run(["cargo", "build", "--release", "--bin", "shakeout"], cwd=REPO, check=True)
    if not args.binary.exists():
        log(f"{args.binary} is missing (build it, or pass --binary)")
        return 2

    started = datetime.datetime.now().astimezone()
    note_start = machine_note()
    rows, failed = [], 0
    with tempfile.TemporaryDirectory(prefix="hostile-yaml-") as tmp:
        for name, text in corpus().items():
            data = text.encode()
            assert len(data) <= MIB, (name, len(data))
            file = Path(tmp) / f"{name}.yaml"
            file.write_bytes(data)
            runs = [run_once(args.binary, file, args.timeout) for _ in range(args.runs)]
            codes = sorted({r["rc"] for r in runs}, key=str)
            wall = max(r["wall_s"] for r in runs)
            rss_all = [r["rss_mib"] for r in runs]
            rss = max(rss_all) if None not in rss_all else None
            diag = diagnostic(runs[-1]["stderr"], file)
            ok = (codes == [3] and wall <= GOALS["wall_s"] and rss is not None
                  and rss <= GOALS["rss_mib"] and not diag.startswith("(no"))
            failed += not ok
            rows.append((name, len(data), "/".join(map(str, codes)), wall, rss,
                         "PASS" if ok else "FAIL", diag))
            log(f"  {name}: exit {codes}, {wall:.3f} s, {rss} MiB")

    print(f"`python3 benches/hostile_yaml.py --runs {args.runs}`, "
          f"{started:%Y-%m-%d %H:%M %Z}, `{args.binary.relative_to(REPO) if args.binary.is_relative_to(REPO) else args.binary}`; "
          f"{note_start} at the start, {machine_note().split(', load average ')[1]} at the end. "
          f"Goals: every file exits 3 with a positioned diagnostic in at most "
          f"{GOALS['wall_s']:g} s and {GOALS['rss_mib']:g} MiB peak RSS (max of {args.runs} runs).\n")
    print("| case | bytes | exit | max wall (s) | max RSS (MiB) | goal | diagnostic (line:col: reason) |")
    print("|---|---:|:-:|---:|---:|:-:|---|")
    for name, size, codes, wall, rss, verdict, diag in rows:
        rss_text = f"{rss:.1f}" if rss is not None else "?"
        print(f"| {name} | {size:,} | {codes} | {wall:.3f} | {rss_text} | {verdict} | {diag} |")
    print(f"\n{len(rows) - failed} of {len(rows)} cases PASS.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
