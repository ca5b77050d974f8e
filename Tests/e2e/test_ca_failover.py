"""A fleet's CA as replicas, and admission control.

a. Two `sds-agent ca serve` replicas sign with one CA (both import the same --ca-cert/--ca-key; no
   datastore), and an agent in fetch mode has both as --ca-address. One replica is killed with
   SIGKILL while two Envoys do mTLS through the agent: the agent's next renewals (POST /rotate on
   its admin) succeed on the other replica, and no request through the Envoys fails.
b. A `ca serve` at --max-inflight 1 under a burst of concurrent calls answers some UNAVAILABLE with
   gRPC's grpc-retry-pushback-ms trailer, and counts them in its /metrics.
c. An agent refused by --caller-rate retries no earlier than the hint: exactly one refusal, then
   the certificate, at least the hint after the refusal.

Run: SDS_AGENT_BIN=$(swift build --show-bin-path)/sds-agent .venv/bin/python -m pytest Tests/e2e/test_ca_failover.py -q -s
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import grpc

import istio_ca
from conftest import wait_envoys_hold
from daemon_support import AdminClient, poll
from test_fetch_mode import Traffic, assert_envoys_intact, make_csr, start_envoys

PUSHBACK = "grpc-retry-pushback-ms"


def operator_ca(tmp_path):
    """One root and its key, imported by every replica (each keeps its own state directory)."""
    key, cert = istio_ca.make_root("fleet root")
    root = tmp_path / "root.pem"
    root.write_text(istio_ca.pem_cert(cert))
    key_path = tmp_path / "root-key.pem"
    key_path.write_bytes(istio_ca.pem_key(key))
    key_path.chmod(0o600)
    return root, key_path


def replica(start_ca_serve, tmp_path, name, root, key, *extra):
    state = tmp_path / name
    state.mkdir(mode=0o700)
    (state / "ca-cert.pem").write_text(root.read_text())
    return start_ca_serve(state_dir=state, extra_args=["--ca-cert", root, "--ca-key", key, *extra])


def metric(admin: AdminClient, line_prefix: str) -> int:
    for line in admin.get("/metrics").splitlines():
        if line.startswith(line_prefix + " "):
            return int(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_prefix} not in /metrics")


def signed(ca) -> int:
    return sum("signed certificate" in line for line in ca.log_lines())


def test_agent_fails_over_to_the_other_replica_with_no_failed_request(start_ca_serve, start_agent, start_envoy,
                                                                      jwt_keys, tmp_path, free_port):
    root, key = operator_ca(tmp_path)
    first = replica(start_ca_serve, tmp_path, "replica-a", root, key)
    second = replica(start_ca_serve, tmp_path, "replica-b", root, key)
    token = jwt_keys.write_token(tmp_path / "token")
    admin = AdminClient(f"127.0.0.1:{free_port()}")
    agent = start_agent("1h", identity=None, extra_args=[
        "--ca", "istio", "--ca-address", first.address, "--ca-address", second.address, "--ca-root", root,
        "--token-file", token, "--admin", admin.address])
    poll(lambda: agent.fetch("default")[0], 30, what="the first certificate")
    # Calls take turns: a few rotations reach both replicas, which sign with the one CA.
    for _ in range(3):
        status, body, _ = admin.request("POST", "/rotate")
        assert status == 200, body
    assert signed(first) >= 1 and signed(second) >= 1, (signed(first), signed(second))

    gateway, backend = start_envoys(start_envoy, agent)
    envoys = (gateway, backend)
    pids = {e.name: e.pid for e in envoys}
    traffic = Traffic(gateway)
    traffic.start()
    timings = []
    try:
        first.stopped_on_purpose = True
        first.proc.kill()
        first.proc.wait(10)
        before = signed(second)
        for _ in range(4):
            t0 = time.monotonic()
            status, body, _ = admin.request("POST", "/rotate", timeout=30)
            timings.append(time.monotonic() - t0)
            assert status == 200, f"a renewal failed after the replica died: {status} {body}\n{agent.tail()}"
            wait_envoys_hold(envoys, lambda: agent.fetch("default")[0][0]["serial"], timeout=20)
        sent = traffic.sent
        poll(lambda: traffic.sent >= sent + 20, 10, what="traffic after the failover")
    finally:
        traffic.stop()
    moved = [line for line in agent.log_lines() if "the CA address is unavailable; trying the next" in line]
    print(f"\nrenewals after SIGKILL: {', '.join(f'{t * 1000:.0f} ms' for t in timings)}; "
          f"requests={traffic.sent} failed={len(traffic.failures)}; moved on {len(moved)} time(s)")
    assert signed(second) == before + 4
    assert moved and first.address in moved[0], agent.tail()
    assert not traffic.failures, f"{len(traffic.failures)}/{traffic.sent} requests failed: {traffic.failures[:10]}"
    assert_envoys_intact(envoys, pids)


def test_over_capacity_answers_unavailable_with_a_retry_hint(start_ca_serve, jwt_keys, tmp_path, free_port):
    admin = AdminClient(f"127.0.0.1:{free_port()}")
    ca = start_ca_serve(extra_args=["--max-inflight", "1", "--admin", admin.address])
    ca_pb2, ca_pb2_grpc = istio_ca.load_protos()
    token = jwt_keys.mint()
    csr = make_csr()
    channels = [grpc.secure_channel(ca.address, grpc.ssl_channel_credentials(ca.root_path.read_bytes()))
                for _ in range(8)]
    stubs = [ca_pb2_grpc.IstioCertificateServiceStub(c) for c in channels]

    def call(i: int):
        try:
            stubs[i % len(stubs)].CreateCertificate(
                ca_pb2.IstioCertificateRequest(csr=csr, validity_duration=600),
                metadata=[("authorization", f"Bearer {token}")], timeout=30)
            return "ok", None
        except grpc.RpcError as e:
            return e.code(), dict(e.trailing_metadata() or ()), e.details()

    try:
        with ThreadPoolExecutor(64) as pool:
            results = list(pool.map(call, range(400)))
    finally:
        for c in channels:
            c.close()
    refused = [r for r in results if r[0] == grpc.StatusCode.UNAVAILABLE]
    others = [r for r in results if r[0] not in ("ok", grpc.StatusCode.UNAVAILABLE)]
    print(f"\nburst of {len(results)}: {len(results) - len(refused)} signed, {len(refused)} refused")
    assert not others, others[:3]
    assert refused, "no call was refused at --max-inflight 1"
    hints = [int(r[1][PUSHBACK]) for r in refused]
    assert all(h >= 100 for h in hints), hints[:10]
    assert all("retry after grpc-retry-pushback-ms" in r[2] for r in refused), refused[0]
    line = 'sds_agent_ca_admission_refusals_total{reason="in_flight"}'
    assert metric(admin, line) == len(refused)
    assert metric(admin, "sds_agent_ca_calls_in_flight_limit") == 1


def test_an_agent_refused_by_the_caller_rate_retries_no_earlier_than_the_hint(start_ca_serve, start_agent, jwt_keys,
                                                                             tmp_path, free_port):
    ca_admin = AdminClient(f"127.0.0.1:{free_port()}")
    # One signing every 5 s per caller: the agent's first certificate takes the token.
    ca = start_ca_serve(extra_args=["--caller-rate", "0.2", "--admin", ca_admin.address])
    token = jwt_keys.write_token(tmp_path / "token")
    admin = AdminClient(f"127.0.0.1:{free_port()}")
    agent = start_agent("1h", identity=None, extra_args=[
        "--ca", "istio", "--ca-address", ca.address, "--ca-root", ca.root_path, "--token-file", token,
        "--admin", admin.address])
    poll(lambda: agent.fetch("default")[0], 30, what="the first certificate")
    first = agent.fetch("default")[0][0]["serial"]
    t0 = time.monotonic()
    status, body, _ = admin.request("POST", "/rotate", timeout=30)
    refused_at = time.monotonic()
    assert status == 503, (status, body)
    _, line = agent.wait_log("the CA is over capacity and asks to retry later", 10)
    hint_ms = int(re.search(r"retry_after_ms=(\d+)", line).group(1))
    assert 500 <= hint_ms <= 5000, line
    poll(lambda: agent.fetch("default")[0][0]["serial"] != first, 30, interval=0.05, what="the retried renewal")
    renewed_at = time.monotonic()
    refusals = metric(ca_admin, 'sds_agent_ca_admission_refusals_total{reason="caller_rate"}')
    print(f"\nhint {hint_ms} ms; renewed {renewed_at - refused_at:.2f} s after the refusal "
          f"({renewed_at - t0:.2f} s after asking); refusals {refusals}")
    # The refusal came before POST /rotate answered: the retry, no earlier than the hint after it,
    # ends at least the hint after the request began.
    assert renewed_at - t0 >= hint_ms / 1000
    # An agent that came back early would have been refused again.
    assert refusals == 1
    assert renewed_at - refused_at <= 2 * hint_ms / 1000 + 5
