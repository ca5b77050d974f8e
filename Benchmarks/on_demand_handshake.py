"""First-handshake latency of an on-demand certificate (SNI → minted by sds-agent → served by
Envoy's on-demand certificate selector) next to a handshake with a certificate Envoy already
holds (the same listener, a name minted earlier). Each handshake is a new TCP + TLS connection
with a fresh client context; the figures are whole handshakes as a client sees them.

  Benchmarks/on-demand-handshake.sh [--agent PATH] [--count N]
"""

from __future__ import annotations

import argparse
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "Tests" / "e2e"))

from conftest import Agent, Envoy, _free_port, envoy_bin, render_example  # noqa: E402
from daemon_support import agent_argv, clean_env, fetch_secrets  # noqa: E402


def handshake(port: int, sni: str, roots: Path) -> float:
    context = ssl.create_default_context(cafile=str(roots))
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=sni):
            return time.perf_counter() - t0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agent", required=True)
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    import os

    os.environ["SDS_AGENT_BIN"] = args.agent
    work = Path(tempfile.mkdtemp(prefix="odh-", dir="/tmp"))
    socket_path = work / "sds.sock"
    argv = agent_argv(socket_path, work / "state", "--on-demand-names", "*.bench.example", "--on-demand-max-names",
                      str(args.count * 2 + 10), "--on-demand-rate", "100000/m", "--caller-stream-rate", "100000/s",
                      log_level="warning")
    agent = Agent("agent", argv, work, socket_path, env=clean_env())
    envoy = None
    try:
        agent.wait_serving()
        roots = work / "roots.pem"
        from daemon_support import secrets_of

        roots.write_text(
            secrets_of(fetch_secrets(socket_path, names=("ROOTCA",)))["ROOTCA"].validation_context.trusted_ca
            .inline_bytes.decode())
        admin_port, port = _free_port(), _free_port()
        config = work / "envoy.yaml"
        config.write_text(render_example("on-demand", SDS_SOCKET=socket_path, ADMIN_PORT=admin_port, LISTEN_PORT=port))
        envoy = Envoy("envoy", [envoy_bin(), "-c", config, "--concurrency", "1", "--disable-hot-restart", "-l", "warn"],
                      work, admin_port, port)
        envoy.wait_live()
        handshake(port, "warmup.bench.example", roots)
        first = [handshake(port, f"n{i}.bench.example", roots) for i in range(args.count)]
        held = [handshake(port, f"n{i % 10}.bench.example", roots) for i in range(args.count)]
        version = subprocess.run([str(envoy_bin()), "--version"], capture_output=True, text=True).stdout
        print(f"Envoy {version.split('/')[1] if '/' in version else '?'}, agent {args.agent}, "
              f"{args.count} handshakes each, new TCP + TLS connection per handshake")
        for label, values in (("first handshake, on-demand name (minted and pushed)", first),
                              ("handshake, certificate Envoy already holds", held)):
            print(f"{label}: p50 {percentile(values, 50) * 1000:.1f} ms, p99 {percentile(values, 99) * 1000:.1f} ms, "
                  f"mean {statistics.mean(values) * 1000:.1f} ms")
        return 0
    finally:
        if envoy:
            envoy.stop()
        agent.stop()


if __name__ == "__main__":
    sys.exit(main())
