#!/usr/bin/env python3
"""Benchmark shakeout's prober against wrk and oha on loopback, in one run.

Starts its own nginx (and the shakeout sample service for the accuracy check), runs
the peer tools and ours against the same target, and prints Markdown tables plus a
JSON file (bench-out/prober.json).

    python3 benches/prober.py            # full run, ~5 minutes
    python3 benches/prober.py --quick    # smoke run, ~1 minute

Steps:
  1. max rate at 16 and 1 keep-alive connections: wrk, oha, ours; requests/s, client CPU
     per request, max RSS (all three measured the same way: CPU from wait4's rusage, peak RSS
     from GNU time, which forks the tool from a small process);
     3 interleaved repetitions, medians, ratios ours/wrk and ours/oha.
     Plus an RSS-flatness check: ours at max rate for a short and a long run.
  2. 1,000 req/s for 20 s: ours vs `oha -q 1000 --latency-correction`: latency p50/p99,
     ours' scheduling lag p50/p99, client CPU as % of one core.
  3. accuracy: the sample service with a known added delay; the truth is its service time
     measured closed-loop by `wrk -t1 -c1 --latency`; ours (and oha) at a fixed rate.

`--tls` runs the HTTPS and HTTP/2 steps instead (bench-out/prober-tls.json), against an
nginx serving HTTPS (TLS 1.3, ECDSA P-256 certificate from a private CA made with the
openssl CLI for this run, session tickets off so every new connection is a full handshake;
ALPN h2 and http/1.1):
  T1. max rate, HTTP/1.1 over TLS at 16 and 1 keep-alive connections: wrk, oha, ours, as
      step 1 (goals: ours >= 1.0x oha req/s, CPU/request <= 1.2x wrk).
  T2. a new connection (TCP + full TLS handshake) per request at 1,000 req/s: ours vs
      `oha --disable-keepalive`; handshake time p50/p99, client and nginx CPU per request,
      ours' scheduling lag p99 (goal <= 200 µs). T2b (`newplain`): the same over plain
      http, the baseline that shows what the handshake adds.
  T3. HTTP/2 at 1,000 req/s over one multiplexed connection: ours (`--http-version http2`)
      vs `oha --http2 -c 1 -p 16`; latency p50/p99.
Verification: ours and oha verify the server's certificate against the private CA (ours
`--ca`, oha `--cacert`); wrk (4.1, OpenSSL) verifies nothing.

    python3 benches/prober.py --tls --wait-quiet 300

Python 3.11, stdlib only. Loopback only; every load is bounded by its duration and by a
kill timer; every process started here is stopped in a finally block.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WRK = shutil.which("wrk") or "/usr/bin/wrk"
OHA = shutil.which("oha") or str(Path.home() / ".cargo/bin/oha")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
OURS_EXTRA: list[str] = []  # --ours-args, e.g. "--threads 0"
VARIANTS: dict[str, list[str]] = {}  # --variant NAME=ARGS: more rows of ours in step 1
TOOL_EXTRA: dict[str, list[str]] = {}  # per-tool arguments for the whole run (--tls: trust)
TIME = "/usr/bin/time"  # GNU time, for the tool's own max RSS
OURS = Path(os.environ.get("PROBE_BENCH", REPO / "target/release/examples/probe_bench"))
SHAKEOUT = REPO / "target/release/shakeout"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Goals from the issue.
GOALS = {
    "max_rate_vs_wrk": 0.9,  # ours req/s >= 0.9 x wrk
    "max_rate_vs_oha": 1.0,  # ours req/s >= 1.0 x oha
    "cpu_per_req_vs_wrk": 1.1,  # ours CPU/req <= 1.1 x wrk
    "rss_mib": 16.0,  # ours max RSS at max rate <= 16 MiB, and flat
    "lag_p99_us": 200.0,  # at 1k req/s
    "lat_p50_us": 200.0,
    "lat_p99_us": 1000.0,
    "cpu_pct": 10.0,
    "accuracy_p50_ms": 1.0,
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# machine and process accounting


def machine_info() -> dict:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine so far (all cores, from /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    v = [int(x) for x in fields]
    # user nice system idle iowait irq softirq steal guest guest_nice
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    busy = sum(v[:8]) - idle
    return busy / CLK_TCK


def wait_quiet(max_wait_s: float, limit_cores: float = 0.3) -> float:
    """Wait (up to max_wait_s) until the machine's busy CPU over 3 s is below limit_cores;
    returns the last busy reading."""
    deadline = time.monotonic() + max_wait_s
    while True:
        b0, t0 = machine_busy_s(), time.monotonic()
        time.sleep(3)
        busy = (machine_busy_s() - b0) / (time.monotonic() - t0)
        if busy < limit_cores or time.monotonic() >= deadline:
            return busy
        log(f"  machine busy ({busy:.2f} cores), waiting for a quiet moment")


def group_cpu_s(pgid: int | None) -> float:
    """CPU seconds (user+sys) of all live processes in process group `pgid`."""
    if pgid is None:
        return 0.0
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        rest = stat.rsplit(")", 1)[1].split()
        # rest[0]=state, rest[2]=pgrp, rest[11]=utime, rest[12]=stime
        if int(rest[2]) == pgid:
            total += int(rest[11]) + int(rest[12])
    return total / CLK_TCK


def run_child(cmd: list[str], timeout_s: float, server_pgid: int | None = None) -> dict:
    """Run `cmd` to completion, with a kill timer; returns output, wall time, and the
    child's own rusage from wait4 (CPU seconds, max RSS), plus the server's CPU and the
    rest of the machine's CPU during the run (to spot outside load)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        busy0, srv0 = machine_busy_s(), group_cpu_s(server_pgid)
        t0 = time.monotonic()
        # The tool runs under GNU time, which forks it from its own small process: a
        # child forked from this Python would inherit Python's RSS high-water mark (Linux
        # keeps ru_maxrss across exec), so wait4's ru_maxrss would read ~14 MiB for
        # /bin/true. CPU comes from wait4 (µs resolution; it includes time's own ~1 ms).
        rss_file = tempfile.NamedTemporaryFile(prefix="rss-", delete=False)
        rss_file.close()
        p = subprocess.Popen([TIME, "-f", "%M", "-o", rss_file.name, *cmd], stdout=out,
                             stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
        killed = []

        def kill() -> None:
            killed.append(True)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout_s, kill)
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        wall = time.monotonic() - t0
        busy1, srv1 = machine_busy_s(), group_cpu_s(server_pgid)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        cpu = ru.ru_utime + ru.ru_stime
        try:
            rss_lines = Path(rss_file.name).read_text().split()
            maxrss_kib = float(rss_lines[-1]) if rss_lines else None
        except (OSError, ValueError):
            maxrss_kib = None
        finally:
            os.unlink(rss_file.name)
        server_cpu = srv1 - srv0
        return {
            "cmd": " ".join(cmd),
            "rc": p.returncode,
            "killed": bool(killed),
            "stdout": out.read().decode(errors="replace"),
            "stderr": err.read().decode(errors="replace")[-2000:],
            "wall_s": wall,
            "cpu_s": cpu,
            "utime_s": ru.ru_utime,
            "stime_s": ru.ru_stime,
            "maxrss_mib": maxrss_kib / 1024.0 if maxrss_kib else None,  # GNU time: KiB
            "server_cpu_s": server_cpu,
            # machine busy cores during the run, minus client and server: outside load
            "other_cores": max(0.0, (busy1 - busy0 - cpu - server_cpu) / wall),
            "loadavg": round(os.getloadavg()[0], 2),
        }


# ---------------------------------------------------------------------------------------
# targets


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"target exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout_s}s")


def stop(proc: subprocess.Popen | None, group: bool) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        if group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type text/plain;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok"; }}
    }}
}}
"""


def start_nginx(tmp: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port))
    proc = subprocess.Popen(
        [NGINX, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(conf)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "nginx.stderr", "wb"),
        start_new_session=True,  # own process group: stop() signals master + worker
    )
    try:
        wait_listening(port, proc)
    except Exception:
        stop(proc, group=True)
        raise
    return proc, port


def start_sample(delay: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [str(SHAKEOUT), "sample-service", "--listen", "127.0.0.1:0", "--delay", delay],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 10.0)
        line = proc.stdout.readline().decode() if ready else ""
        m = re.search(r"listening on (\S+)", line)
        if not m:
            raise RuntimeError(f"sample service did not start: {line!r}")
        addr = m.group(1)
        host, port = addr.rsplit(":", 1)
        if not host.startswith("127."):
            raise RuntimeError(f"sample service on non-loopback address {addr}")
        wait_listening(int(port), proc)
    except Exception:
        stop(proc, group=True)
        raise
    return proc, addr


# ---------------------------------------------------------------------------------------
# tools and parsers

_UNITS = {"ns": 1e-3, "us": 1.0, "µs": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def to_us(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(ns|us|µs|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"duration `{text}`")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> dict:
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if not m:
        raise ValueError("wrk: no `N requests in` line:\n" + out)
    requests = int(m.group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = 0
    se = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if se:
        errors += sum(int(x) for x in se.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    r = {"ok": requests - errors, "errors": errors, "rps": rps}
    for pct, val in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.M):
        r[f"lat_p{pct}_us"] = to_us(val)
    return r


def parse_oha(out: str) -> dict:
    d = json.loads(out)
    s = d["summary"]
    codes = d.get("statusCodeDistribution") or {}
    errs = d.get("errorDistribution") or {}
    ok = sum(v for k, v in codes.items() if str(k).startswith("2"))
    errors = sum(codes.values()) - ok + sum(errs.values())
    pct = d.get("latencyPercentiles") or {}
    r = {
        "ok": ok,
        "errors": errors,
        "error_kinds": errs,
        "rps": s.get("requestsPerSec"),
    }
    for p in ("p50", "p90", "p99"):
        if pct.get(p) is not None:
            r[f"lat_{p}_us"] = pct[p] * 1e6
    # oha's connection set-up (TCP connect + TLS handshake, one figure), average only
    dial = (d.get("details") or {}).get("DNSDialup") or {}
    if dial.get("average") is not None:
        r["dialup_avg_us"] = dial["average"] * 1e6
    return r


def _get(d: dict, *paths: str):
    """First present value among dotted paths (the example's field names may change)."""
    for path in paths:
        cur = d
        for part in path.split("."):
            if isinstance(cur, dict) and part in cur:
                cur = cur[part]
            else:
                cur = None
                break
        if cur is not None:
            return cur
    return None


def parse_ours(out: str) -> dict:
    line = [ln for ln in out.splitlines() if ln.strip().startswith("{")][-1]
    d = json.loads(line)
    ok = _get(d, "ok", "okCount")
    errs = _get(d, "errors") or {}
    errors = sum(errs.values()) if isinstance(errs, dict) else int(errs)
    dur = _get(d, "durationS", "duration_s", "elapsedS")
    r = {
        "ok": ok,
        "errors": errors,
        "error_kinds": {k: v for k, v in errs.items() if v} if isinstance(errs, dict) else {},
        "sent": _get(d, "sent", "scheduled"),
        "rps": ok / dur if ok is not None and dur else _get(d, "rate", "achievedRate"),
        "self_cpu_s": _get(d, "cpuS", "cpu_s"),
        "self_rss_kib": _get(d, "maxRssKiB", "max_rss_kib"),
        "raw": d,
    }
    for p in ("p50", "p90", "p99", "max"):
        v = _get(d, f"latencyUs.{p}", f"latency_us.{p}", f"latency.{p}Us")
        if v is not None:
            r[f"lat_{p}_us"] = float(v)
    for p in ("p50", "p99"):
        v = _get(d, f"lagUs.{p}", f"lag_us.{p}", f"lag.{p}Us")
        if v is not None:
            r[f"lag_{p}_us"] = float(v)
    # connection set-up cost (https:// and new connections; the run report's connectionSetup)
    cs = d.get("connectionSetup") or {}
    if cs:
        r["conns_opened"] = cs.get("opened")
        r["tls_failures"] = cs.get("tlsFailures")
        for k, name in (("connectUs", "connect"), ("handshakeUs", "handshake")):
            for p in ("p50", "p99"):
                v = (cs.get(k) or {}).get(p)
                if v is not None:
                    r[f"{name}_{p}_us"] = float(v)
    return r


def run_tool(tool: str, url: str, *, rate: str, conns: int, dur: float,
             server_pgid: int | None, extra: dict[str, list[str]] | None = None) -> dict:
    """`extra`: more arguments per tool for this run (TLS trust, HTTP version, new
    connections), on top of TOOL_EXTRA (the whole run's)."""
    secs = max(1, int(round(dur)))
    more = TOOL_EXTRA.get(tool, []) + (extra or {}).get(tool, [])
    if tool == "wrk":
        if rate != "max":
            raise ValueError("wrk is closed-loop only")
        threads = min(2, conns)
        cmd = [WRK, f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--latency", *more, url]
        parse = parse_wrk
    elif tool == "oha":
        cmd = [OHA, "-z", f"{secs}s", "-c", str(conns), "--no-tui", "--output-format", "json"]
        if rate != "max":
            cmd += ["-q", str(rate), "--latency-correction"]
        cmd += more
        cmd.append(url)
        parse = parse_oha
    elif tool == "ours" or tool in VARIANTS:
        cmd = [str(OURS), "--url", url, "--rate", str(rate), "--connections", str(conns),
               "--duration", str(secs), *OURS_EXTRA, *VARIANTS.get(tool, []), *more]
        parse = parse_ours
    else:
        raise ValueError(tool)
    res = run_child(cmd, timeout_s=secs + 30, server_pgid=server_pgid)
    rec = {"tool": tool, "rate": rate, "conns": conns, "duration_s": secs}
    rec.update({k: v for k, v in res.items() if k not in ("stdout", "stderr")})
    if res["rc"] != 0 or res["killed"]:
        rec["failed"] = f"rc={res['rc']} killed={res['killed']}: {res['stderr'][-500:]}"
        log(f"  !! {tool} failed: {rec['failed']}")
        return rec
    try:
        rec.update(parse(res["stdout"]))
    except Exception as e:  # keep going: one bad parse must not lose the rest
        rec["failed"] = f"parse: {e}"
        log(f"  !! {tool} output not parsed: {e}\n{res['stdout'][:1000]}")
        return rec
    ok = rec.get("ok") or 0
    rec["cpu_us_per_req"] = 1e6 * res["cpu_s"] / ok if ok else None
    rec["cpu_pct"] = 100.0 * res["cpu_s"] / res["wall_s"]
    rec["server_cpu_us_per_req"] = 1e6 * res["server_cpu_s"] / ok if ok else None
    return rec


# ---------------------------------------------------------------------------------------
# steps


NOISY_CORES = 0.25  # outside load during a run above which the run is marked noisy


def med(runs: list[dict], key: str):
    vals = [r[key] for r in runs if r.get(key) is not None and not r.get("failed")]
    return statistics.median(vals) if vals else None


def summarize(runs: list[dict]) -> dict:
    keys = ["rps", "cpu_us_per_req", "maxrss_mib", "cpu_pct", "server_cpu_us_per_req",
            "other_cores", "errors", "lat_p50_us", "lat_p99_us", "lag_p50_us", "lag_p99_us"]
    s = {k: med(runs, k) for k in keys}
    # the same medians over the runs without outside load (None when there is none)
    quiet = [r for r in runs if (r.get("other_cores") or 0) <= NOISY_CORES]
    s["quiet"] = {k: med(quiet, k) for k in keys} if quiet else None
    s["quiet_runs"] = sum(1 for r in quiet if not r.get("failed"))
    s["runs"] = sum(1 for r in runs if not r.get("failed"))
    s["noisy_runs"] = sum(1 for r in runs if (r.get("other_cores") or 0) > NOISY_CORES)
    s["failed"] = sum(1 for r in runs if r.get("failed"))
    if runs:
        s["rss_max_mib"] = max((r.get("maxrss_mib") or 0) for r in runs)
    return s


def step_max_rate(url, tools, conn_counts, dur, reps, pgid, extra=None) -> dict:
    out = {}
    for conns in conn_counts:
        runs = {t: [] for t in tools}
        for rep in range(reps):
            order = tools[rep % len(tools):] + tools[:rep % len(tools)]  # rotate
            for t in order:
                r = run_tool(t, url, rate="max", conns=conns, dur=dur, server_pgid=pgid,
                             extra=extra)
                runs[t].append(r)
                log(f"  c={conns:<2} rep {rep + 1}/{reps} {t:<4} "
                    f"{fmt(r.get('rps'), 0):>8} req/s  {fmt(r.get('cpu_us_per_req'), 1):>6} µs CPU/req  "
                    f"{fmt(r.get('maxrss_mib'), 1):>6} MiB  other load {fmt(r.get('other_cores'), 2)} cores")
        out[str(conns)] = {"runs": runs, "median": {t: summarize(runs[t]) for t in tools}}
    return out


def step_rss_flat(url, short, long_, pgid) -> dict:
    res = {}
    for d in (short, long_):
        r = run_tool("ours", url, rate="max", conns=16, dur=d, server_pgid=pgid)
        res[str(d)] = r
        log(f"  ours max rate {d}s: {fmt(r.get('maxrss_mib'), 2)} MiB, {fmt(r.get('ok'), 0)} ok")
    return res


def step_fixed_rate(url, tools, rate, conns, dur, pgid, label, extra=None) -> dict:
    res = {}
    for t in tools:
        r = run_tool(t, url, rate=str(rate), conns=conns, dur=dur, server_pgid=pgid,
                     extra=extra)
        res[t] = r
        log(f"  {label} {t:<4} p50 {fmt(r.get('lat_p50_us'), 0)} µs  p99 {fmt(r.get('lat_p99_us'), 0)} µs  "
            f"lag p50/p99 {fmt(r.get('lag_p50_us'), 0)}/{fmt(r.get('lag_p99_us'), 0)} µs  "
            f"CPU {fmt(r.get('cpu_pct'), 1)} %  ok {r.get('ok')} err {r.get('errors')}")
    return res


# ---------------------------------------------------------------------------------------
# reporting


def fmt(v, nd=1) -> str:
    if v is None:
        return "—"
    if isinstance(v, float) and nd == 0:
        return f"{v:,.0f}"
    if isinstance(v, (int,)) and not isinstance(v, bool):
        return f"{v:,}"
    return f"{v:,.{nd}f}"


def ratio(a, b):
    return a / b if a is not None and b else None


def markdown(res: dict) -> str:
    L = []
    m = res["machine"]
    L.append(f"Machine: {m['nproc']} × {m['cpu_model']}, kernel {m['kernel']}, "
             f"load average at start {m['loadavg_start']}.  Mode: {res['mode']}.  "
             f"Ours: `{res.get('ours_cmd', '')}`.")
    L.append("")
    for conns, step in res.get("max_rate", {}).items():
        med_ = step["median"]
        L.append(f"### Max rate, {conns} keep-alive connection(s), "
                 f"{res['params']['max_dur']} s × {res['params']['reps']} interleaved runs (medians)")
        L.append("")
        L.append("| tool | req/s | client CPU µs/req | max RSS MiB | nginx CPU µs/req | errors | outside load (cores) | noisy runs |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for t, s in med_.items():
            L.append(f"| {t} | {fmt(s['rps'], 0)} | {fmt(s['cpu_us_per_req'], 2)} | "
                     f"{fmt(s['maxrss_mib'], 1)} | {fmt(s['server_cpu_us_per_req'], 2)} | "
                     f"{fmt(s['errors'], 0)} | {fmt(s['other_cores'], 2)} | "
                     f"{s['noisy_runs']}/{s['runs']} |")
        o = med_.get("ours")
        if o:
            for peer in ("wrk", "oha"):
                p = med_.get(peer)
                if p:
                    L.append(f"| **ours/{peer}** | **{fmt(ratio(o['rps'], p['rps']), 2)}×** | "
                             f"**{fmt(ratio(o['cpu_us_per_req'], p['cpu_us_per_req']), 2)}×** | "
                             f"**{fmt(ratio(o['maxrss_mib'], p['maxrss_mib']), 2)}×** | | | | |")
        L.append("")
        L.append(f"Same, medians over the quiet runs only (outside load ≤ {NOISY_CORES} cores):")
        L.append("")
        L.append("| tool | quiet runs | req/s | client CPU µs/req | max RSS MiB |")
        L.append("|---|---:|---:|---:|---:|")
        for t, s in med_.items():
            q = s.get("quiet") or {}
            L.append(f"| {t} | {s.get('quiet_runs', 0)}/{s['runs']} | {fmt(q.get('rps'), 0)} | "
                     f"{fmt(q.get('cpu_us_per_req'), 2)} | {fmt(q.get('maxrss_mib'), 1)} |")
        o = (med_.get("ours") or {}).get("quiet")
        if o:
            for peer in ("wrk", "oha"):
                p = (med_.get(peer) or {}).get("quiet")
                if p:
                    L.append(f"| **ours/{peer}** | | **{fmt(ratio(o['rps'], p['rps']), 2)}×** | "
                             f"**{fmt(ratio(o['cpu_us_per_req'], p['cpu_us_per_req']), 2)}×** | "
                             f"**{fmt(ratio(o['maxrss_mib'], p['maxrss_mib']), 2)}×** |")
        L.append("")
    if res.get("rss_flat"):
        L.append("### RSS of ours at max rate (16 connections) vs run length")
        L.append("")
        L.append("| duration s | requests | max RSS MiB |")
        L.append("|---:|---:|---:|")
        for d, r in res["rss_flat"].items():
            L.append(f"| {d} | {fmt(r.get('ok'), 0)} | {fmt(r.get('maxrss_mib'), 2)} |")
        L.append("")
    for key, title in (("fixed_rate", "Fixed rate on nginx"),
                       ("accuracy", "Accuracy: sample service with a known delay")):
        block = res.get(key)
        if not block:
            continue
        L.append(f"### {title}: {block['rate']} req/s, {block['conns']} connections, {block['dur']} s")
        L.append("")
        L.append("| tool | ok | errors | latency p50 µs | p90 µs | p99 µs | lag p50 µs | lag p99 µs | client CPU % of a core | max RSS MiB | outside load (cores) |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for t, r in block["runs"].items():
            L.append(f"| {t} | {fmt(r.get('ok'), 0)} | {fmt(r.get('errors'), 0)} | "
                     f"{fmt(r.get('lat_p50_us'), 0)} | {fmt(r.get('lat_p90_us'), 0)} | "
                     f"{fmt(r.get('lat_p99_us'), 0)} | {fmt(r.get('lag_p50_us'), 0)} | "
                     f"{fmt(r.get('lag_p99_us'), 0)} | {fmt(r.get('cpu_pct'), 1)} | "
                     f"{fmt(r.get('maxrss_mib'), 1)} | {fmt(r.get('other_cores'), 2)} |")
        if key == "accuracy":
            t = block.get("truth", {})
            L.append(f"| truth: wrk -t1 -c1 closed loop | {fmt(t.get('ok'), 0)} | {fmt(t.get('errors'), 0)} | "
                     f"{fmt(t.get('lat_p50_us'), 0)} | {fmt(t.get('lat_p90_us'), 0)} | "
                     f"{fmt(t.get('lat_p99_us'), 0)} | | | | | {fmt(t.get('other_cores'), 2)} |")
            L.append("")
            L.append(f"p50 error of ours vs truth: **{fmt(block.get('p50_error_ms'), 3)} ms**; "
                     f"p99 difference {fmt(block.get('p99_diff_ms'), 3)} ms.")
        L.append("")
    if res.get("goals"):
        L.append("### Goals")
        L.append("")
        L.append("| goal | measured | verdict |")
        L.append("|---|---|---|")
        for g in res["goals"]:
            L.append(f"| {g['goal']} | {g['measured']} | {g['verdict']} |")
        L.append("")
    return "\n".join(L)


def goals(res: dict) -> list[dict]:
    G = []

    def add(goal, value, ok, text):
        verdict = "n/a" if value is None else ("met" if ok else "**not met**")
        G.append({"goal": goal, "measured": text if value is not None else "not measured",
                  "verdict": verdict, "value": value})

    m16 = res.get("max_rate", {}).get("16", {}).get("median", {})
    o, w, h = m16.get("ours"), m16.get("wrk"), m16.get("oha")
    qo, qw, qh = ((m16.get(t) or {}).get("quiet") for t in ("ours", "wrk", "oha"))
    if qo and qw:
        r = ratio(qo["rps"], qw["rps"])
        add("(quiet runs) max rate ≥ 0.9× wrk (16 conns)", r, r is not None and r >= GOALS["max_rate_vs_wrk"],
            f"{fmt(r, 2)}× ({fmt(qo['rps'], 0)} vs {fmt(qw['rps'], 0)} req/s)")
        r = ratio(qo["cpu_us_per_req"], qw["cpu_us_per_req"])
        add("(quiet runs) CPU/request ≤ 1.1× wrk (16 conns)", r, r is not None and r <= GOALS["cpu_per_req_vs_wrk"],
            f"{fmt(r, 2)}× ({fmt(qo['cpu_us_per_req'], 2)} vs {fmt(qw['cpu_us_per_req'], 2)} µs)")
    if qo and qh:
        r = ratio(qo["rps"], qh["rps"])
        add("(quiet runs) max rate ≥ 1.0× oha (16 conns)", r, r is not None and r >= GOALS["max_rate_vs_oha"],
            f"{fmt(r, 2)}× ({fmt(qo['rps'], 0)} vs {fmt(qh['rps'], 0)} req/s)")
    if o and w:
        r = ratio(o["rps"], w["rps"])
        add("max rate ≥ 0.9× wrk (16 conns)", r, r is not None and r >= GOALS["max_rate_vs_wrk"],
            f"{fmt(r, 2)}× ({fmt(o['rps'], 0)} vs {fmt(w['rps'], 0)} req/s)")
        r = ratio(o["cpu_us_per_req"], w["cpu_us_per_req"])
        add("CPU/request ≤ 1.1× wrk (16 conns)", r, r is not None and r <= GOALS["cpu_per_req_vs_wrk"],
            f"{fmt(r, 2)}× ({fmt(o['cpu_us_per_req'], 2)} vs {fmt(w['cpu_us_per_req'], 2)} µs)")
    if o and h:
        r = ratio(o["rps"], h["rps"])
        add("max rate ≥ 1.0× oha (16 conns)", r, r is not None and r >= GOALS["max_rate_vs_oha"],
            f"{fmt(r, 2)}× ({fmt(o['rps'], 0)} vs {fmt(h['rps'], 0)} req/s)")
    m1 = res.get("max_rate", {}).get("1", {}).get("median", {})
    o1, w1 = m1.get("ours"), m1.get("wrk")
    if o1 and w1:
        r = ratio(o1["rps"], w1["rps"])
        add("(info) max rate vs wrk, 1 conn", r, r is not None and r >= GOALS["max_rate_vs_wrk"],
            f"{fmt(r, 2)}× ({fmt(o1['rps'], 0)} vs {fmt(w1['rps'], 0)} req/s)")
        r = ratio(o1["cpu_us_per_req"], w1["cpu_us_per_req"])
        add("(info) CPU/request vs wrk, 1 conn", r, r is not None and r <= GOALS["cpu_per_req_vs_wrk"],
            f"{fmt(r, 2)}× ({fmt(o1['cpu_us_per_req'], 2)} vs {fmt(w1['cpu_us_per_req'], 2)} µs)")
    if o:
        rss = [s.get("rss_max_mib") for s in (m16.get("ours"), m1.get("ours")) if s]
        flat = res.get("rss_flat") or {}
        fl = [r.get("maxrss_mib") for r in flat.values() if r.get("maxrss_mib")]
        worst = max(rss + fl) if rss + fl else None
        growth = (max(fl) - min(fl)) if len(fl) >= 2 else None
        ok = worst is not None and worst <= GOALS["rss_mib"] and (growth is None or growth <= 1.0)
        add("RSS at max rate ≤ 16 MiB and flat", worst, ok,
            f"max {fmt(worst, 1)} MiB; short→long run growth {fmt(growth, 2)} MiB")
    fr = (res.get("fixed_rate") or {}).get("runs", {}).get("ours")
    if fr and not fr.get("failed"):
        for key, goal, lim in (("lag_p99_us", "1k/s: lag p99 ≤ 200 µs", GOALS["lag_p99_us"]),
                               ("lat_p50_us", "1k/s: latency p50 ≤ 200 µs", GOALS["lat_p50_us"]),
                               ("lat_p99_us", "1k/s: latency p99 ≤ 1 ms", GOALS["lat_p99_us"])):
            v = fr.get(key)
            add(goal, v, v is not None and v <= lim, f"{fmt(v, 0)} µs")
        v = fr.get("cpu_pct")
        add("1k/s: CPU ≤ 10 % of a core", v, v is not None and v <= GOALS["cpu_pct"], f"{fmt(v, 1)} %")
    acc = res.get("accuracy") or {}
    v = acc.get("p50_error_ms")
    add("delay accuracy: |p50 error| ≤ 1 ms", v, v is not None and abs(v) <= GOALS["accuracy_p50_ms"],
        f"{fmt(v, 3)} ms")
    return G


# ---------------------------------------------------------------------------------------
# --tls: HTTPS and HTTP/2


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, timeout=30,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_certs(tmp: Path) -> dict:
    """A private CA and a server certificate for 127.0.0.1 (ECDSA P-256), made once per run."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=shakeout bench CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=tmp)
    openssl("req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1", cwd=tmp)
    (tmp / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
            cwd=tmp)
    return {"ca": tmp / "ca.pem", "cert": tmp / "server.pem", "key": tmp / "server.key"}


def nginx_version() -> tuple[int, ...]:
    out = subprocess.run([NGINX, "-v"], capture_output=True, text=True, timeout=10).stderr
    m = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else (0, 0, 0)


def start_nginx_tls(tmp: Path, certs: dict) -> tuple[subprocess.Popen, int, str]:
    """nginx serving HTTPS with HTTP/2 by ALPN; the listen syntax nginx's version takes."""
    port = free_port()
    if nginx_version() >= (1, 25, 1):
        listen = f"listen 127.0.0.1:{port} ssl;\n        http2 on;"
    else:
        listen = f"listen 127.0.0.1:{port} ssl http2;"
    tls = (f"{listen}\n"
           f"        ssl_certificate {certs['cert']};\n"
           f"        ssl_certificate_key {certs['key']};\n"
           "        ssl_protocols TLSv1.2 TLSv1.3;\n"
           "        ssl_session_tickets off;  # no resumption: every new connection is a full handshake\n"
           "        ssl_session_cache off;")
    conf_text = NGINX_CONF.format(tmp=tmp, port=port).replace(
        f"listen 127.0.0.1:{port};", tls)
    conf = tmp / "nginx.conf"
    conf.write_text(conf_text)
    proc = subprocess.Popen(
        [NGINX, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(conf)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=open(tmp / "nginx.stderr", "wb"), start_new_session=True)
    try:
        wait_listening(port, proc)
    except Exception:
        stop(proc, group=True)
        raise
    return proc, port, listen


def tls_table(L: list, block: dict) -> None:
    L.append(f"{block['rate']:,} req/s, {block['conns']} in flight at most, {block['dur']} s; "
             f"{block['note']}")
    L.append("")
    L.append("| tool | ok | errors | connections opened | TCP connect p50/p99 µs | TLS handshake p50/p99 µs | "
             "latency p50 µs | p90 µs | p99 µs | lag p50/p99 µs | client CPU µs/req | client CPU % of a core | "
             "nginx CPU µs/req | max RSS MiB | outside load (cores) |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for t, r in block["runs"].items():
        tcp = hs = "—"
        if r.get("connect_p50_us") is not None:
            tcp = f"{fmt(r.get('connect_p50_us'), 0)} / {fmt(r.get('connect_p99_us'), 0)}"
        if r.get("handshake_p50_us") is not None:
            hs = f"{fmt(r.get('handshake_p50_us'), 0)} / {fmt(r.get('handshake_p99_us'), 0)}"
        if r.get("dialup_avg_us") is not None:  # oha: one average for TCP and TLS together
            tcp = hs = f"avg {fmt(r['dialup_avg_us'], 0)} (both)"
        lag = (f"{fmt(r.get('lag_p50_us'), 0)} / {fmt(r.get('lag_p99_us'), 0)}"
               if r.get("lag_p99_us") is not None else "—")
        L.append(f"| {t} | {fmt(r.get('ok'), 0)} | {fmt(r.get('errors'), 0)} | "
                 f"{fmt(r.get('conns_opened'), 0)} | {tcp} | {hs} | "
                 f"{fmt(r.get('lat_p50_us'), 0)} | {fmt(r.get('lat_p90_us'), 0)} | "
                 f"{fmt(r.get('lat_p99_us'), 0)} | {lag} | {fmt(r.get('cpu_us_per_req'), 1)} | "
                 f"{fmt(r.get('cpu_pct'), 1)} | {fmt(r.get('server_cpu_us_per_req'), 1)} | "
                 f"{fmt(r.get('maxrss_mib'), 1)} | {fmt(r.get('other_cores'), 2)} |")
    L.append("")


def markdown_tls(res: dict) -> str:
    L = [markdown({k: v for k, v in res.items() if k != "goals"}).rstrip(), ""]
    L.insert(1, f"\nnginx `{res['nginx_listen']}`; trust: {res['trust']}\n")
    for key, title in (("new_conns", "New connection (TCP + full TLS 1.3 handshake) per request"),
                       ("new_conns_plain", "New connection per request, plain HTTP (baseline)"),
                       ("http2", "HTTP/2 over TLS, one multiplexed connection")):
        block = res.get(key)
        if block:
            L.append(f"### {title}")
            L.append("")
            tls_table(L, block)
    if res.get("goals"):
        L.append("### Goals")
        L.append("")
        L.append("| goal | measured | verdict |")
        L.append("|---|---|---|")
        for g in res["goals"]:
            L.append(f"| {g['goal']} | {g['measured']} | {g['verdict']} |")
        L.append("")
    return "\n".join(L)


def goals_tls(res: dict) -> list[dict]:
    G = []

    def add(goal, value, ok, text, info=False):
        verdict = "n/a" if value is None else ("info" if info else ("met" if ok else "**not met**"))
        G.append({"goal": goal, "measured": text if value is not None else "not measured",
                  "verdict": verdict, "value": value})

    for conns in ("16", "1"):
        m = res.get("max_rate", {}).get(conns, {}).get("median", {})
        info = conns != "16"
        for which in ("all", "quiet"):
            pick = (lambda t: m.get(t)) if which == "all" else (lambda t: (m.get(t) or {}).get("quiet"))
            o, w, h = pick("ours"), pick("wrk"), pick("oha")
            pre = f"HTTPS keep-alive, {conns} conn{'s' if conns != '1' else ''}" + (
                ", quiet runs" if which == "quiet" else "")
            if info:
                pre = "(info) " + pre
            if o and h:
                r = ratio(o["rps"], h["rps"])
                add(f"{pre}: max rate ≥ 1.0× oha", r, r is not None and r >= 1.0,
                    f"{fmt(r, 2)}× ({fmt(o['rps'], 0)} vs {fmt(h['rps'], 0)} req/s)", info)
            if o and w:
                r = ratio(o["cpu_us_per_req"], w["cpu_us_per_req"])
                add(f"{pre}: CPU/request ≤ 1.2× wrk", r, r is not None and r <= 1.2,
                    f"{fmt(r, 2)}× ({fmt(o['cpu_us_per_req'], 2)} vs {fmt(w['cpu_us_per_req'], 2)} µs)", info)
                r = ratio(o["rps"], w["rps"])
                add(f"(info) {pre.removeprefix('(info) ')}: max rate vs wrk", r, True,
                    f"{fmt(r, 2)}× ({fmt(o['rps'], 0)} vs {fmt(w['rps'], 0)} req/s)", True)
    nc = (res.get("new_conns") or {}).get("runs", {})
    o, h = nc.get("ours"), nc.get("oha")
    if o and not o.get("failed"):
        v = o.get("lag_p99_us")
        add("new connection per request, 1k/s: lag p99 ≤ 200 µs", v, v is not None and v <= 200,
            f"{fmt(v, 0)} µs")
        v = o.get("handshake_p50_us")
        add("(info) new connection: TLS handshake p50 / p99", v, True,
            f"{fmt(v, 0)} / {fmt(o.get('handshake_p99_us'), 0)} µs (TCP connect "
            f"{fmt(o.get('connect_p50_us'), 0)} / {fmt(o.get('connect_p99_us'), 0)} µs)", True)
        v = o.get("cpu_us_per_req")
        hv = (h or {}).get("cpu_us_per_req")
        add("(info) new connection: client CPU per request (handshake included), ours vs oha", v, True,
            f"{fmt(v, 1)} vs {fmt(hv, 1)} µs ({fmt(ratio(v, hv), 2)}×)", True)
    h2 = (res.get("http2") or {}).get("runs", {})
    o, h = h2.get("ours"), h2.get("oha")
    if o and not o.get("failed"):
        add("(info) HTTP/2 1k/s: latency p50 / p99, ours vs oha --http2", o.get("lat_p50_us"), True,
            f"{fmt(o.get('lat_p50_us'), 0)} / {fmt(o.get('lat_p99_us'), 0)} µs vs "
            f"{fmt((h or {}).get('lat_p50_us'), 0)} / {fmt((h or {}).get('lat_p99_us'), 0)} µs", True)
        v = o.get("lag_p99_us")
        add("(info) HTTP/2 1k/s: ours' lag p99", v, True, f"{fmt(v, 0)} µs", True)
    return G


def main_tls(args, p: dict, tools: list[str], have_ours: bool) -> int:
    if args.wait_quiet > 0:
        log(f"busy cores before start: {wait_quiet(args.wait_quiet):.2f}")
    res: dict = {"mode": ("quick" if args.quick else "full") + " --tls", "params": p,
                 "machine": machine_info(),
                 "ours_cmd": f"{OURS} {' '.join(OURS_EXTRA)}".strip()}
    log(f"machine: {res['machine']}")
    la = res["machine"]["loadavg_start"]
    if la[0] > 0.5 * (os.cpu_count() or 1):
        log(f"!! load average {la[0]} on {os.cpu_count()} cores: the machine is busy, "
            "numbers will be noisy (see the 'outside load' column)")
    t_start = time.monotonic()
    if args.steps is None:
        args.steps = "max,new,newplain,h2" if args.tls else "max,rss,fixed,accuracy"
    steps = set(args.steps.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="shakeout-bench-tls-"))
    nginx = None
    try:
        certs = make_certs(tmp)
        ca = str(certs["ca"])
        # the whole run's trust: ours and oha verify against the private CA; wrk verifies nothing
        TOOL_EXTRA["ours"] = ["--ca", ca]
        TOOL_EXTRA["oha"] = ["--cacert", ca]
        for v in VARIANTS:
            TOOL_EXTRA[v] = ["--ca", ca]
        res["trust"] = ("ours verifies the certificate against the private CA (`--ca`), oha too "
                        "(`--cacert`); wrk 4.1 (OpenSSL, SSL_VERIFY_NONE) verifies nothing")
        nginx, port, listen = start_nginx_tls(tmp, certs)
        res["nginx_listen"] = " ".join(listen.split())
        pgid = os.getpgid(nginx.pid)
        url = f"https://127.0.0.1:{port}/"
        log(f"nginx on {url} (pgid {pgid}): {res['nginx_listen']}")
        run_child([WRK, "-t1", "-c4", "-d1s", url], timeout_s=20)  # warm up
        h1 = {t: ["--http-version", "http1"] for t in ["ours", *VARIANTS]}

        if "max" in steps:
            log("step T1: HTTPS keep-alive max rate (HTTP/1.1)")
            vtools = tools + (list(VARIANTS) if have_ours else [])
            res["max_rate"] = step_max_rate(url, vtools, [16, 1], p["max_dur"], p["reps"], pgid,
                                            extra=h1)
        fixed_tools = [t for t in ("ours", "oha") if t in tools]
        vfixed = fixed_tools + (list(VARIANTS) if have_ours else [])  # variants: T2 and T3 too

        def for_ours(args_: list[str]) -> dict:
            return {t: args_ for t in ["ours", *VARIANTS]}
        if "new" in steps:
            log(f"step T2: new connection per request, {p['fixed_rate']} req/s")
            extra = {**for_ours(["--http-version", "http1", "--new-connections"]),
                     "oha": ["--disable-keepalive"]}
            runs = step_fixed_rate(url, vfixed, p["fixed_rate"], p["fixed_conns"],
                                   p["fixed_dur"], pgid, "https-new", extra=extra)
            res["new_conns"] = {"rate": p["fixed_rate"], "conns": p["fixed_conns"],
                                "dur": p["fixed_dur"], "runs": runs,
                                "note": "HTTP/1.1, ours `--new-connections`, oha `--disable-keepalive`; "
                                        "no session resumption on the server."}
        if "newplain" in steps:
            # the same over plain http (another nginx, same config without TLS): the
            # difference is what the TLS handshake costs per request
            log(f"step T2b: new connection per request over plain HTTP, {p['fixed_rate']} req/s")
            ptmp = tmp / "plain"
            ptmp.mkdir()
            plain, pport = start_nginx(ptmp)
            try:
                extra = {**for_ours(["--new-connections"]), "oha": ["--disable-keepalive"]}
                runs = step_fixed_rate(f"http://127.0.0.1:{pport}/", vfixed, p["fixed_rate"],
                                       p["fixed_conns"], p["fixed_dur"], os.getpgid(plain.pid),
                                       "http-new", extra=extra)
            finally:
                stop(plain, group=True)
            res["new_conns_plain"] = {"rate": p["fixed_rate"], "conns": p["fixed_conns"],
                                      "dur": p["fixed_dur"], "runs": runs,
                                      "note": "plain HTTP/1.1 (no TLS), same nginx config: the "
                                              "baseline for T2's handshake cost."}
        if "h2" in steps:
            log(f"step T3: HTTP/2, {p['fixed_rate']} req/s, one connection")
            extra = {**for_ours(["--http-version", "http2"]), "oha": ["--http2", "-p", "16"]}
            # ours: 16 in flight over its one HTTP/2 connection; oha: 1 connection x 16 streams
            runs = {}
            for t in vfixed:
                conns = 1 if t == "oha" else p["fixed_conns"]
                runs.update(step_fixed_rate(url, [t], p["fixed_rate"], conns, p["fixed_dur"],
                                            pgid, "h2", extra=extra))
            res["http2"] = {"rate": p["fixed_rate"], "conns": p["fixed_conns"],
                            "dur": p["fixed_dur"], "runs": runs,
                            "note": "ours `--http-version http2 --connections 16` (one connection, "
                                    "16 streams at most), oha `--http2 -c 1 -p 16`."}
    finally:
        stop(nginx, group=True)
        shutil.rmtree(tmp, ignore_errors=True)

    res["goals"] = goals_tls(res) if have_ours else []
    res["elapsed_s"] = round(time.monotonic() - t_start, 1)
    res["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    out = Path(args.out if args.out != str(REPO / "bench-out/prober.json")
               else REPO / "bench-out/prober-tls.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=str))
    print(markdown_tls(res))
    print(f"\n(elapsed {res['elapsed_s']} s; load average at end {res['machine']['loadavg_end']}; "
          f"JSON in {out})")
    return 0


# ---------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="~1-minute smoke run")
    ap.add_argument("--out", default=str(REPO / "bench-out/prober.json"))
    ap.add_argument("--skip-ours", action="store_true", help="peers only (harness testing)")
    ap.add_argument("--delay", default="5ms", help="sample service added delay")
    ap.add_argument("--reps", type=int, help="repetitions of each max-rate run (default 3, quick 1)")
    ap.add_argument("--steps", default=None,
                    help="comma list of steps to run: max,rss,fixed,accuracy "
                         "(with --tls: max,new,newplain,h2)")
    ap.add_argument("--no-oha", action="store_true", help="without oha (not installed)")
    ap.add_argument("--tls", action="store_true",
                    help="the HTTPS and HTTP/2 steps instead (bench-out/prober-tls.json)")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="SECS",
                    help="first wait up to SECS for the machine to be idle (< 0.3 busy cores)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=ARGS",
                    help='an extra row of ours in the max-rate step, e.g. "ours-t0=--threads 0"')
    ap.add_argument("--ours-args", default="", help='extra arguments for probe_bench, e.g. "--threads 0"')
    args = ap.parse_args()
    OURS_EXTRA.extend(args.ours_args.split())
    for v in args.variant:
        name, _, vargs = v.partition("=")
        VARIANTS[name] = vargs.split()

    if args.quick:
        p = dict(max_dur=3, reps=1, fixed_dur=5, rss=(2, 5), truth_dur=3, acc_dur=4)
    else:
        p = dict(max_dur=10, reps=3, fixed_dur=20, rss=(3, 20), truth_dur=5, acc_dur=10)
    p.update(fixed_rate=1000, fixed_conns=16, acc_rate=200, acc_conns=16)
    if args.reps:
        p["reps"] = args.reps
    if args.steps is None:
        args.steps = "max,new,newplain,h2" if args.tls else "max,rss,fixed,accuracy"
    steps = set(args.steps.split(","))

    have_ours = OURS.exists() and not args.skip_ours
    if not have_ours and not args.skip_ours:
        log(f"!! {OURS} not built (cargo build --release --example probe_bench); peers only")
    tools = ["wrk", "oha"] + (["ours"] if have_ours else [])
    if args.no_oha:
        tools.remove("oha")
    for exe in (WRK, NGINX, TIME) + (() if args.no_oha else (OHA,)):
        if not Path(exe).exists():
            log(f"!! missing {exe}")
            return 2

    if args.tls:
        return main_tls(args, p, tools, have_ours)
    if args.wait_quiet > 0:
        log(f"busy cores before start: {wait_quiet(args.wait_quiet):.2f}")
    res: dict = {"mode": "quick" if args.quick else "full", "params": p, "machine": machine_info(),
                 "ours_cmd": f"{OURS} {' '.join(OURS_EXTRA)}".strip()}
    la = res["machine"]["loadavg_start"]
    log(f"machine: {res['machine']}")
    if la[0] > 0.5 * (os.cpu_count() or 1):
        log(f"!! load average {la[0]} on {os.cpu_count()} cores: the machine is busy, "
            "numbers will be noisy (see the 'outside load' column)")
    t_start = time.monotonic()

    tmp = Path(tempfile.mkdtemp(prefix="shakeout-bench-"))
    nginx = sample = None
    try:
        nginx, port = start_nginx(tmp)
        pgid = os.getpgid(nginx.pid)
        url = f"http://127.0.0.1:{port}/"
        log(f"nginx on {url} (pgid {pgid})")
        run_child([WRK, "-t1", "-c4", "-d1s", url], timeout_s=20)  # warm up

        if "max" in steps:
            log("step 1: max rate")
            vtools = tools + (list(VARIANTS) if have_ours else [])
            res["max_rate"] = step_max_rate(url, vtools, [16, 1],
                                        p["max_dur"], p["reps"], pgid)
        if have_ours and "rss" in steps:
            log("step 1b: RSS of ours vs run length")
            res["rss_flat"] = step_rss_flat(url, p["rss"][0], p["rss"][1], pgid)

        if "fixed" in steps:
            log(f"step 2: {p['fixed_rate']} req/s")
            runs = step_fixed_rate(url, [t for t in ("ours", "oha") if t in tools], p["fixed_rate"],
                                   p["fixed_conns"], p["fixed_dur"], pgid, "nginx")
            res["fixed_rate"] = {"rate": p["fixed_rate"], "conns": p["fixed_conns"],
                                 "dur": p["fixed_dur"], "runs": runs}
        stop(nginx, group=True)
        nginx = None

        if "accuracy" not in steps:
            pass
        elif SHAKEOUT.exists():
            log(f"step 3: accuracy, sample service --delay {args.delay}")
            sample, addr = start_sample(args.delay)
            spgid = os.getpgid(sample.pid)
            surl = f"http://{addr}/health"
            truth = run_tool("wrk", surl, rate="max", conns=1, dur=p["truth_dur"], server_pgid=spgid)
            log(f"  truth (wrk -t1 -c1): p50 {fmt(truth.get('lat_p50_us'), 0)} µs "
                f"p99 {fmt(truth.get('lat_p99_us'), 0)} µs")
            runs = step_fixed_rate(surl, [t for t in ("ours", "oha") if t in tools], p["acc_rate"],
                                   p["acc_conns"], p["acc_dur"], spgid, "sample")
            acc = {"rate": p["acc_rate"], "conns": p["acc_conns"], "dur": p["acc_dur"],
                   "delay": args.delay, "truth": truth, "runs": runs}
            o = runs.get("ours") or {}
            if truth.get("lat_p50_us") and o.get("lat_p50_us"):
                acc["p50_error_ms"] = (o["lat_p50_us"] - truth["lat_p50_us"]) / 1000
                acc["p99_diff_ms"] = (o["lat_p99_us"] - truth["lat_p99_us"]) / 1000
            res["accuracy"] = acc
        else:
            log(f"!! {SHAKEOUT} not built: accuracy step skipped")
    finally:
        stop(nginx, group=True)
        stop(sample, group=True)
        shutil.rmtree(tmp, ignore_errors=True)

    res["goals"] = goals(res) if have_ours else []
    res["elapsed_s"] = round(time.monotonic() - t_start, 1)
    res["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=str))
    print(markdown(res))
    print(f"\n(elapsed {res['elapsed_s']} s; load average at end {res['machine']['loadavg_end']}; "
          f"JSON in {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
