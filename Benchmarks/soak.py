"""Soak: an agent with short-lived certificates under churning Envoy-like SDS streams and, in
fetch mode, a flapping CA (`sds-agent ca serve` stopped and restarted). Samples the agent's RSS,
open descriptors and threads; fails if they grow after warm-up beyond the stated bounds.

Run through Benchmarks/soak.sh, which finds the binary and the venv (grpcio, xds-protos, PyJWT).
"""

from __future__ import annotations

import argparse
import os
import queue
import random
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

import grpc
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc

SECRET_TYPE_URL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
SERVING_PREFIX = "sds-agent: serving SDS on "
CA_SERVE_PREFIX = "sds-agent ca: serving IstioCertificateService on "
NAME_SETS = [["default"], ["ROOTCA"], ["default", "ROOTCA"]]


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.values = {"opened": 0, "responses": 0, "acks": 0, "no_first": 0, "errors": 0}
        self.last_error = ""

    def add(self, key: str, n: int = 1, error: str = "") -> None:
        with self.lock:
            self.values[key] += n
            if error:
                self.last_error = error

    def snapshot(self) -> dict:
        with self.lock:
            return dict(self.values)


def wait_for_line(path: Path, prefix: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and any(line.startswith(prefix) for line in path.read_text(errors="replace").splitlines()):
            return
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args[0]} exited with {proc.returncode} before '{prefix}'; see {path}")
        time.sleep(0.1)
    raise SystemExit(f"no '{prefix}' within {timeout:.0f}s; see {path}")


def start(argv: list[str], log: Path) -> subprocess.Popen:
    out = open(log, "ab")
    return subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=out, stderr=out)


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FlappingCA(threading.Thread):
    """`ca serve` on one port and state dir: up for `up` seconds, down (SIGTERM) for `down`."""

    def __init__(self, agent: Path, work: Path, up: float, down: float):
        super().__init__(daemon=True)
        self.agent, self.work, self.up, self.down = agent, work, up, down
        self.port = free_port()
        self.state = work / "ca-state"
        self.keys = work / "jwt-keys.pem"
        self.token = work / "token"
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self.stopping = threading.Event()
        self._make_token()

    def _make_token(self) -> None:
        import jwt
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        self.keys.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        now = int(time.time())
        claims = {"iss": "kubernetes/serviceaccount", "aud": ["istio-ca"], "sub": "system:serviceaccount:default:soak",
                  "iat": now, "exp": now + 7 * 86400}
        self.token.write_text(jwt.encode(claims, key, algorithm="ES256"))

    @property
    def is_up(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def launch(self) -> None:
        log = self.work / "ca-serve.log"
        with open(log, "ab") as f:
            f.write(f"--- start {self.restarts}\n".encode())
        size = log.stat().st_size
        self.proc = start([self.agent, "ca", "serve", "--listen", f"127.0.0.1:{self.port}", "--state-dir", self.state,
                           "--jwt-keys", self.keys, "--trust-domain", "cluster.local"], log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with open(log, "rb") as f:
                f.seek(size)
                if CA_SERVE_PREFIX.encode() in f.read():
                    return
            if self.proc.poll() is not None:
                raise SystemExit(f"ca serve exited with {self.proc.returncode}; see {log}")
            time.sleep(0.1)
        raise SystemExit(f"ca serve did not start; see {log}")

    def run(self) -> None:
        while not self.stopping.wait(self.up):
            stop(self.proc)
            if self.stopping.wait(self.down):
                return
            self.restarts += 1
            self.launch()

    def finish(self) -> None:
        self.stopping.set()
        self.join(70)
        if self.proc is not None:
            stop(self.proc)


def churn(socket_path: Path, counters: Counters, stopping: threading.Event, seed: int) -> None:
    """One Envoy-like client: streams that subscribe, ACK every response for a few seconds and
    close; a new connection every few streams."""
    rng = random.Random(seed)
    channel = None
    streams_on_channel = 0
    while not stopping.is_set():
        if channel is None or streams_on_channel >= rng.randint(3, 8):
            if channel is not None:
                channel.close()
            # A subchannel pool per channel: a new channel is a new connection, as a restarted Envoy's.
            channel = grpc.insecure_channel(f"unix:{socket_path}", options=[("grpc.use_local_subchannel_pool", 1)])
            streams_on_channel = 0
        streams_on_channel += 1
        stub = sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
        requests: queue.Queue = queue.Queue()
        names = rng.choice(NAME_SETS)

        def iterate():
            while (request := requests.get()) is not None:
                yield request

        node = discovery_pb2.DiscoveryRequest().node
        node.id = f"sidecar~10.0.0.{seed}~soak.default~default.svc.cluster.local"
        requests.put(discovery_pb2.DiscoveryRequest(type_url=SECRET_TYPE_URL, resource_names=names, node=node))
        call = stub.StreamSecrets(iterate())
        counters.add("opened")
        hold_until = time.monotonic() + rng.uniform(0.5, 6)
        responses = queue.Queue()

        def read():
            try:
                for response in call:
                    responses.put(response)
            except grpc.RpcError as e:
                responses.put(e)
            responses.put(None)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        got_first = False
        while time.monotonic() < hold_until and not stopping.is_set():
            try:
                item = responses.get(timeout=max(0.05, hold_until - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                break
            if isinstance(item, grpc.RpcError):
                if item.code() != grpc.StatusCode.CANCELLED:
                    counters.add("errors", error=f"{item.code()}: {item.details()}")
                break
            got_first = True
            counters.add("responses")
            requests.put(discovery_pb2.DiscoveryRequest(
                type_url=SECRET_TYPE_URL, resource_names=names, version_info=item.version_info,
                response_nonce=item.nonce))
            counters.add("acks")
        if not got_first:
            # No certificate to serve yet (the CA was down when it expired): Envoy would wait too.
            counters.add("no_first")
        requests.put(None)
        call.cancel()
        reader.join(5)
    if channel is not None:
        channel.close()


def sample(pid: int) -> tuple[float, int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_mb = int(fields["VmRSS"].split()[0]) / 1024
    threads = int(fields["Threads"])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss_mb, fds, threads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agent", required=True, type=Path)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--mode", choices=["fetch", "embedded"], default="fetch")
    parser.add_argument("--cert-ttl", default="20s")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--interval", type=float, default=5, help="seconds between samples")
    parser.add_argument("--ca-up", type=float, default=25, help="fetch mode: seconds the CA stays up")
    parser.add_argument("--ca-down", type=float, default=8, help="fetch mode: seconds the CA stays down")
    parser.add_argument("--max-rss-growth", type=float, default=0.20, help="fraction, after warm-up")
    parser.add_argument("--max-fd-growth", type=int, default=10)
    parser.add_argument("--max-thread-growth", type=int, default=4)
    args = parser.parse_args()

    duration = args.minutes * 60
    warmup = min(60.0, duration / 3)
    work = Path(tempfile.mkdtemp(prefix="sds-soak-"))
    socket_path = work / "sds.sock"
    agent_log = work / "agent.log"
    argv = [args.agent, "run", "--socket", socket_path, "--state-dir", work / "state", "--cert-ttl", args.cert_ttl,
            "--trust-domain", "cluster.local", "--log-level", "info"]
    ca = None
    if args.mode == "fetch":
        ca = FlappingCA(args.agent, work, args.ca_up, args.ca_down)
        ca.launch()
        argv += ["--ca", "istio", "--ca-address", f"127.0.0.1:{ca.port}", "--ca-root", ca.state / "ca-cert.pem",
                 "--token-file", ca.token]
    else:
        argv += ["--identity", "spiffe://cluster.local/ns/default/sa/soak"]
    agent = start(argv, agent_log)
    print(f"soak: {args.mode} mode, cert TTL {args.cert_ttl}, {args.clients} churning clients, "
          f"{args.minutes:g} min (warm-up {warmup:.0f}s); agent pid {agent.pid}, logs in {work}", flush=True)
    counters = Counters()
    stopping = threading.Event()
    workers = []
    failed = ""
    try:
        wait_for_line(agent_log, SERVING_PREFIX, agent, 60)
        if ca is not None:
            ca.start()
        workers = [threading.Thread(target=churn, args=(socket_path, counters, stopping, i + 1), daemon=True)
                   for i in range(args.clients)]
        for worker in workers:
            worker.start()
        print(f"{'t(s)':>6} {'RSS MB':>8} {'fds':>5} {'thr':>4} {'streams':>8} {'resp':>7} {'acks':>7} "
              f"{'no-cert':>7} {'errors':>6} {'CA':>5}", flush=True)
        t0 = time.monotonic()
        samples = []
        while (elapsed := time.monotonic() - t0) < duration:
            if agent.poll() is not None:
                failed = f"the agent exited with {agent.returncode}"
                break
            rss, fds, threads = sample(agent.pid)
            samples.append((elapsed, rss, fds, threads))
            c = counters.snapshot()
            ca_state = "-" if ca is None else ("up" if ca.is_up else "down")
            print(f"{elapsed:6.0f} {rss:8.1f} {fds:5d} {threads:4d} {c['opened']:8d} {c['responses']:7d} "
                  f"{c['acks']:7d} {c['no_first']:7d} {c['errors']:6d} {ca_state:>5}", flush=True)
            time.sleep(args.interval)
    finally:
        stopping.set()
        for worker in workers:
            worker.join(15)
        if ca is not None:
            ca.finish()
        code = stop(agent)

    if failed:
        print(f"FAIL: {failed}; see {agent_log}")
        return 1
    after = [s for s in samples if s[0] >= warmup]
    if len(after) < 4:
        print("FAIL: too few samples after warm-up; run longer")
        return 1
    # Medians of the first and last three samples after warm-up: one GC-less spike is not growth.
    first = [statistics.median(s[i] for s in after[:3]) for i in (1, 2, 3)]
    last = [statistics.median(s[i] for s in after[-3:]) for i in (1, 2, 3)]
    c = counters.snapshot()
    print(f"after warm-up: RSS {first[0]:.1f} -> {last[0]:.1f} MB ({(last[0] / first[0] - 1) * 100:+.1f}%, "
          f"bound +{args.max_rss_growth * 100:.0f}%), fds {first[1]:.0f} -> {last[1]:.0f} "
          f"(bound +{args.max_fd_growth}), threads {first[2]:.0f} -> {last[2]:.0f} (bound +{args.max_thread_growth})")
    print(f"peak RSS {max(s[1] for s in samples):.1f} MB, peak fds {max(s[2] for s in samples)}, "
          f"peak threads {max(s[3] for s in samples)}; {c['opened']} streams, {c['responses']} responses, "
          f"{c['acks']} ACKs, {c['no_first']} streams closed before a first response, {c['errors']} errors"
          + (f" (last: {counters.last_error})" if counters.last_error else "")
          + (f"; CA restarted {ca.restarts} times" if ca is not None else "") + f"; agent exit code {code}")
    problems = []
    if last[0] > first[0] * (1 + args.max_rss_growth):
        problems.append("RSS grew beyond the bound")
    if last[1] > first[1] + args.max_fd_growth:
        problems.append("open descriptors grew beyond the bound")
    if last[2] > first[2] + args.max_thread_growth:
        problems.append("threads grew beyond the bound")
    if c["errors"]:
        problems.append(f"{c['errors']} streams failed")
    if code != 0:
        problems.append(f"the agent exited with {code} on SIGTERM")
    if problems:
        print("FAIL: " + "; ".join(problems) + f" (logs in {work})")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
