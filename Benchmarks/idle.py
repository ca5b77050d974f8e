"""Startup to READY and an idle agent (issue #27, goal 5): how long from exec until the agent
tells systemd READY=1 (with a warm state directory), and what an agent serving nobody costs over
N minutes — RSS, CPU time, threads and descriptors, sampled from /proc.

READY is read the way systemd reads it: the agent is started with NOTIFY_SOCKET pointing at a
datagram socket of this script's, so the time is exec → the READY=1 datagram, nothing polled.
Run through Benchmarks/idle.sh, which finds the binary.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def start(agent: str, base: Path, notify: Path) -> subprocess.Popen:
    env = {**os.environ, "NOTIFY_SOCKET": str(notify)}
    return subprocess.Popen(
        [agent, "run", "--socket", base / "sds.sock", "--state-dir", base / "state", "--cert-ttl", "1h",
         "--identity", "spiffe://cluster.local/ns/default/sa/default", "--log-level", "warning"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(base / "agent.log", "ab"), env=env)


def time_to_ready(agent: str, base: Path, runs: int) -> list[float]:
    notify = base / "notify.sock"
    times = []
    for _ in range(runs):
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
            notify.unlink(missing_ok=True)
            listener.bind(str(notify))
            listener.settimeout(30)
            t0 = time.monotonic()
            proc = start(agent, base, notify)
            try:
                while b"READY=1" not in listener.recv(4096):
                    pass
                times.append(time.monotonic() - t0)
            finally:
                proc.terminate()
                proc.wait(30)
    return times


def sample(pid: int) -> dict:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {"cpu": (int(stat[11]) + int(stat[12])) / CLOCK_TICKS,
            "rss_kib": int(status["VmRSS"].split()[0]),
            "threads": int(status["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def drain(listener: socket.socket) -> None:
    try:
        while listener.recv(4096):
            pass
    except OSError:
        pass


def idle(agent: str, base: Path, minutes: float, every: float) -> list[tuple[float, dict]]:
    notify = base / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        notify.unlink(missing_ok=True)
        listener.bind(str(notify))
        listener.settimeout(30)
        proc = start(agent, base, notify)
        try:
            while b"READY=1" not in listener.recv(4096):
                pass
            # Read every later notification, as systemd does: the agent sends STATUS= every 10 s.
            listener.settimeout(None)
            threading.Thread(target=drain, args=(listener,), daemon=True).start()
            t0 = time.monotonic()
            samples = [(0.0, sample(proc.pid))]
            while (elapsed := time.monotonic() - t0) < minutes * 60:
                time.sleep(min(every, minutes * 60 - elapsed))
                samples.append((time.monotonic() - t0, sample(proc.pid)))
            return samples
        finally:
            stopped = time.monotonic()
            proc.terminate()
            proc.wait(30)
            print(f"(the agent exited {time.monotonic() - stopped:.2f} s after SIGTERM)\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agent", required=True)
    parser.add_argument("--runs", type=int, default=20, help="starts timed to READY")
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the agent idles")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="sds-idle-"))
    try:
        (base / "state").mkdir()
        time_to_ready(args.agent, base, 1)  # makes the state directory warm: CA and key on disk
        times = sorted(time_to_ready(args.agent, base, args.runs))
        print("### Startup (exec to READY=1 on NOTIFY_SOCKET, warm state directory)\n")
        print("| runs | min | median | p90 | max |\n| --- | --- | --- | --- | --- |")
        ms = [t * 1000 for t in times]
        print(f"| {len(ms)} | {ms[0]:.1f} ms | {statistics.median(ms):.1f} ms | "
              f"{ms[int(len(ms) * 0.9) - 1]:.1f} ms | {ms[-1]:.1f} ms |\n")
        samples = idle(args.agent, base, args.minutes, args.every)
        first, last = samples[0][1], samples[-1][1]
        span = samples[-1][0]
        cpu = last["cpu"] - first["cpu"]
        print(f"### Idle ({span / 60:.1f} min, no client; sampled every {args.every:.0f} s from /proc)\n")
        print("| RSS at READY | RSS at end | RSS max | CPU over the span | CPU share of one core | threads | fds |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        print(f"| {first['rss_kib'] / 1024:.1f} MiB | {last['rss_kib'] / 1024:.1f} MiB | "
              f"{max(s['rss_kib'] for _, s in samples) / 1024:.1f} MiB | {cpu * 1000:.0f} ms | "
              f"{cpu / span * 100:.3f} % | {first['threads']} → {last['threads']} | {first['fds']} → {last['fds']} |")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
