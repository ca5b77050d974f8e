"""Fetch mode: sds-agent gets its workload certificates from an Istio-compatible CA.

a. `sds-agent run --ca istio` against `sds-agent ca serve` (another process): two Envoys do mTLS
   through >= 3 rotations with zero failed requests.
b. The same against the independent legacy-style Python CA (istio_ca.py): cert_chain=[leaf, root].
   Also: headers and token re-read reach the CA, and a renewal the CA answered is served within
   PROMPT_ANSWER seconds (test_fetch_mode_legacy_ca_answer_is_used_promptly).
c. CA outage drill: the CA is stopped (SIGTERM) and restarted on the same port and state dir while
   traffic flows; the agent keeps serving and renews within one backoff interval of the restart.
d. `ca serve` refuses bad callers and bad CSRs with the right gRPC status and a useful message.
e. The agent refuses each kind of bad answer from the Python CA and keeps serving what it has.
0. test_fetch_mode_python_ca_misbehaves_as_told: each istio_ca.py mode really is bad in its own way.

Run: SDS_AGENT_BIN=.build/debug/sds-agent .venv/bin/python -m pytest Tests/e2e -q -s -k fetch_mode
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest

import istio_ca
from conftest import SPIFFE_ID, agent_bin, norm_serial, wait_envoys_hold
from test_envoy_rotation import CertPoller, get, split_pem, stat

REJECTED = "rejected the CA's response"
COULD_NOT_RENEW = "could not renew the certificate; still serving the current one"
FIRST_CERT_TIMEOUT = 30.0
REQUEST_INTERVAL = 0.1


# --------------------------------------------------------------------------- helpers


def fetch_mode_args(ca, token: Path, *extra) -> list[str]:
    return ["--ca", "istio", "--ca-address", ca.address, "--ca-root", str(ca.root_path),
            "--token-file", str(token), *extra]


def try_fetch(agent, timeout: float = 5.0) -> tuple[str, dict]:
    """Run `sds-agent fetch --json` without insisting on success.
    Returns (outcome, secrets by name): outcome is "ok", "exit N: <stderr>" or "timeout"."""
    import json

    argv = [str(agent_bin()), "fetch", "--socket", str(agent.socket_path), "--json"]
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", {}
    if res.returncode != 0:
        return f"exit {res.returncode}: {res.stderr.strip()[:300]}", {}
    return "ok", {s["name"]: s for s in json.loads(res.stdout)}


def wait_for_default(agent, timeout: float = FIRST_CERT_TIMEOUT, other_than: str | None = None) -> dict:
    """Poll fetch until `default` is served (and its serial differs from `other_than`)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        outcome, secrets = try_fetch(agent)
        d = secrets.get("default")
        if d and (other_than is None or norm_serial(d["serial"]) != norm_serial(other_than)):
            return secrets
        last = (outcome, d and d["serial"])
        assert agent.alive(), f"agent exited with code {agent.proc.poll()}\n{agent.tail()}"
        assert time.monotonic() < deadline, (f"no `default` (other than serial {other_than}) within "
                                             f"{timeout:.0f}s; last fetch: {last}\n{agent.tail()}")
        time.sleep(0.2)


def served_serial(agent) -> str:
    """The serial of the `default` certificate the agent serves now."""
    return wait_for_default(agent)["default"]["serial"]


def certs_der(pem: str) -> list[bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    return [x509.load_pem_x509_certificate(b.encode()).public_bytes(serialization.Encoding.DER)
            for b in split_pem(pem)]


def leaf_of(pem: str):
    from cryptography import x509

    return x509.load_pem_x509_certificate(split_pem(pem)[0].encode())


def verify_served(secrets: dict, expected_root_pem: str, tmp_path: Path) -> None:
    """ROOTCA is exactly the expected root, and the served chain verifies against it."""
    assert certs_der(secrets["ROOTCA"]["pem"]) == certs_der(expected_root_pem), (
        f"ROOTCA served by the agent is not the CA's root:\n{secrets['ROOTCA']['pem']}")
    leaf, *intermediates = split_pem(secrets["default"]["pem"])
    (tmp_path / "leaf.pem").write_text(leaf)
    (tmp_path / "intermediates.pem").write_text("".join(intermediates))
    (tmp_path / "root.pem").write_text(secrets["ROOTCA"]["pem"])
    for purpose in ("sslclient", "sslserver"):
        argv = ["openssl", "verify", "-CAfile", tmp_path / "root.pem", "-purpose", purpose]
        if intermediates:
            argv += ["-untrusted", tmp_path / "intermediates.pem"]
        res = subprocess.run([str(a) for a in argv + [tmp_path / "leaf.pem"]], capture_output=True, text=True)
        print(f"openssl verify -purpose {purpose} ({len(intermediates)} intermediate(s)): {res.stdout.strip()}")
        assert res.returncode == 0, f"openssl verify failed:\n{res.stdout}{res.stderr}"


def parse_retry_in(line: str) -> float:
    """Seconds from a `retry_in=` log field (Swift Duration text such as `1.234 seconds`)."""
    m = re.search(r"retry_in=\"?([0-9.]+(?:e-?\d+)?)\s*(seconds|second|s|ms|milliseconds)?", line)
    assert m, f"no parsable retry_in= in: {line}"
    value = float(m.group(1))
    return value / 1000 if m.group(2) in ("ms", "milliseconds") else value


class Traffic(threading.Thread):
    """GET /hello through the gateway every REQUEST_INTERVAL until stopped; records every failure."""

    def __init__(self, gateway):
        super().__init__(daemon=True)
        self.gateway = gateway
        self.sent = 0
        self.failures: list[str] = []
        self.peer_ids: set = set()
        self.stop_event = threading.Event()
        self.t0 = time.monotonic()

    def run(self):
        while not self.stop_event.is_set():
            self.sent += 1
            t = time.monotonic() - self.t0
            try:
                status, peer = get(self.gateway.listen_port)
                if status != 200:
                    self.failures.append(f"t={t:.1f}s status {status}")
                else:
                    self.peer_ids.add(peer)
            except OSError as e:
                self.failures.append(f"t={t:.1f}s {e!r}")
            self.stop_event.wait(REQUEST_INTERVAL)

    def stop(self):
        self.stop_event.set()
        self.join(10)


def start_envoys(start_envoy, agent):
    backend = start_envoy("backend", agent.socket_path)
    gateway = start_envoy("gateway", agent.socket_path, BACKEND_PORT=backend.listen_port)
    return gateway, backend


def assert_envoys_intact(envoys, pids) -> None:
    import json

    for e in envoys:
        assert e.alive(), f"{e.name} died: exit code {e.proc.poll()}"
        assert e.pid == pids[e.name]
        info = json.loads(e.admin("/server_info"))
        assert int(info["command_line_options"].get("restart_epoch", 0)) == 0, info["command_line_options"]
        assert info["state"] == "LIVE", info["state"]


def rotation_under_traffic(agent, start_envoy, *, min_serials: int, min_duration: float, max_duration: float):
    """Two Envoys on the agent, traffic until each Envoy saw `min_serials` serials (and at least
    `min_duration`), then the same assertions as test_envoy_rotation. Returns (gateway, backend)."""
    gateway, backend = start_envoys(start_envoy, agent)
    pids = {backend.name: backend.pid, gateway.name: gateway.pid}
    poller = CertPoller([gateway, backend])
    poller.poll_once()
    poller.start()
    traffic = Traffic(gateway)
    traffic.start()
    t0 = time.monotonic()
    try:
        while True:
            elapsed = time.monotonic() - t0
            if elapsed >= max_duration:
                break
            if elapsed >= min_duration and all(poller.count(e.name) >= min_serials for e in (gateway, backend)):
                break
            assert agent.alive(), f"sds-agent exited with code {agent.proc.poll()}"
            time.sleep(0.2)
    finally:
        traffic.stop()
        poller.stop_event.set()
        poller.join(10)
    duration = time.monotonic() - t0
    serials_gw, serials_be = poller.serials[gateway.name], poller.serials[backend.name]
    handshakes_gw = stat(gateway, "cluster.backend.ssl.handshake")
    handshakes_be = stat(backend, f"listener.127.0.0.1_{backend.listen_port}.ssl.handshake")
    print(f"\nrequests={traffic.sent} failed={len(traffic.failures)} duration={duration:.1f}s "
          f"serials_gateway={len(serials_gw)} serials_backend={len(serials_be)} "
          f"handshakes gateway={handshakes_gw} backend={handshakes_be}")
    for name, times in poller.first_seen.items():
        print(f"{name}: new certificate every {[f'{b - a:.1f}s' for a, b in zip(times, times[1:])]}")
    assert not traffic.failures, f"{len(traffic.failures)}/{traffic.sent} requests failed: {traffic.failures[:10]}"
    assert traffic.sent >= 10 * min_duration * 0.5, f"only {traffic.sent} requests in {duration:.0f}s"
    assert len(serials_gw) >= min_serials, f"gateway saw only {serials_gw}"
    assert len(serials_be) >= min_serials, f"backend saw only {serials_be}"
    assert handshakes_gw >= min_serials and handshakes_be >= min_serials, (handshakes_gw, handshakes_be)
    assert traffic.peer_ids == {SPIFFE_ID}, f"backend reported peer URI SAN(s) {traffic.peer_ids}"
    assert_envoys_intact((gateway, backend), pids)
    assert agent.alive(), "sds-agent exited during the test"
    return gateway, backend


# --------------------------------------------------------------------------- a, b: rotation


def test_fetch_mode_rotation_with_ca_serve(start_ca_serve, start_agent, start_envoy, jwt_keys, tmp_path):
    ca = start_ca_serve()
    token = jwt_keys.write_token(tmp_path / "token")
    # No --identity: the agent must derive it from the token's sub.
    agent = start_agent("20s", extra_args=fetch_mode_args(ca, token), identity=None)
    t0 = time.monotonic()
    first = wait_for_default(agent)
    print(f"first certificate {time.monotonic() - t0:.2f}s after the banner: serial {first['default']['serial']}")
    assert first["default"]["spiffe_id"] == SPIFFE_ID, first["default"]
    gateway, backend = rotation_under_traffic(agent, start_envoy, min_serials=3, min_duration=35, max_duration=60)
    secrets = wait_for_default(agent)
    verify_served(secrets, ca.root_path.read_text(), tmp_path)
    leaf = leaf_of(secrets["default"]["pem"])
    lifetime = (leaf.not_valid_after_utc - leaf.not_valid_before_utc).total_seconds()
    print(f"ca serve leaf lifetime {lifetime:.0f}s (asked 20s), chain_length={secrets['default']['chain_length']}")
    assert 20 <= lifetime <= 20 + 60, f"leaf lifetime {lifetime}s for --cert-ttl 20s"
    wait_envoys_hold((gateway, backend), lambda: served_serial(agent))


def test_fetch_mode_rotation_with_legacy_python_ca(start_python_ca, start_agent, start_envoy, jwt_keys, tmp_path):
    ca = start_python_ca("good")
    token = jwt_keys.write_token(tmp_path / "token")
    agent = start_agent("20s", extra_args=fetch_mode_args(ca, token, "--ca-server-name", "localhost",
                                                          "--cluster-id", "e2e-cluster",
                                                          "--ca-header", "x-e2e-probe=legacy"))
    first = wait_for_default(agent)
    assert first["default"]["spiffe_id"] == SPIFFE_ID, first["default"]
    gateway, backend = rotation_under_traffic(agent, start_envoy, min_serials=2, min_duration=20, max_duration=45)

    # The token file is re-read for every request: replace it, then wait until the agent serves a
    # certificate from a request that started after the rewrite (a renewal may be in flight now).
    first_token = token.read_text()
    new_token = jwt_keys.mint(jti="second-token")
    token.write_text(new_token)
    t_write = time.time()
    deadline = time.monotonic() + 40
    while True:
        later = {norm_serial(r["serial"]): r for r in ca.requests() if r["time"] > t_write + 0.5}
        outcome, secrets = try_fetch(agent)
        if "default" in secrets and norm_serial(secrets["default"]["serial"]) in later:
            break
        assert time.monotonic() < deadline, f"no certificate from a request after the token rewrite: {outcome}"
        time.sleep(0.2)
    verify_served(secrets, ca.root_path.read_text(), tmp_path)

    requests = ca.requests()
    print(f"python CA saw {len(requests)} requests; first metadata: "
          f"{ {k: v for k, v in requests[0]['metadata'].items() if k != 'authorization'} }")
    for r in requests:
        md = r["metadata"]
        assert md.get("clusterid") == "e2e-cluster", md
        assert md.get("x-e2e-probe") == "legacy", md
        assert r["validity_duration"] == 20, r
        assert r["csr_uri_sans"] == [SPIFFE_ID], r
    assert requests[0]["metadata"].get("authorization") == f"Bearer {first_token}", requests[0]["metadata"]
    for r in later.values():
        assert r["metadata"].get("authorization") == f"Bearer {new_token}", "a request after the rewrite " \
            "did not carry the new token file's contents"


PROMPT_ANSWER = 2.0  # seconds from the CA signing a renewal to the agent serving it


def test_fetch_mode_legacy_ca_answer_is_used_promptly(start_python_ca, start_agent, jwt_keys, tmp_path):
    """A renewal answered by a grpc-core server (the Python CA) is served at once: the agent must not
    sit on a CA's answer (e.g. waiting for the CA to close the connection) while its certificate ages."""
    ca = start_python_ca("good")
    token = jwt_keys.write_token(tmp_path / "token")
    agent = start_agent("20s", extra_args=fetch_mode_args(ca, token))
    first = wait_for_default(agent)["default"]
    deadline = time.monotonic() + 30
    while len(ca.requests()) < 2:  # the renewal request (at 40-60% of the lifetime)
        assert time.monotonic() < deadline, f"no renewal request within 30s: {ca.requests()}"
        time.sleep(0.05)
    renewal = ca.requests()[1]
    served = wait_for_default(agent, timeout=30, other_than=first["serial"])["default"]
    delay = time.time() - renewal["time"]
    print(f"legacy CA signed serial {renewal['serial']}; the agent served it {delay:.2f}s later "
          f"(bound {PROMPT_ANSWER:.1f}s)")
    assert norm_serial(served["serial"]) == norm_serial(renewal["serial"])
    assert delay <= PROMPT_ANSWER, (
        f"the agent served the CA's answer {delay:.1f}s after the CA sent it (bound {PROMPT_ANSWER}s)")


# --------------------------------------------------------------------------- c: outage drill


def test_fetch_mode_ca_outage_drill(start_ca_serve, start_agent, start_envoy, jwt_keys, tmp_path):
    ttl = 40
    ca = start_ca_serve(jwt_keys_file=jwt_keys.pem_path)  # the PEM form of --jwt-keys
    root_before = ca.root_path.read_text()
    token = jwt_keys.write_token(tmp_path / "token")
    agent = start_agent(f"{ttl}s", extra_args=fetch_mode_args(ca, token))
    s1 = wait_for_default(agent)["default"]
    gateway, backend = start_envoys(start_envoy, agent)
    pids = {backend.name: backend.pid, gateway.name: gateway.pid}
    wait_envoys_hold((gateway, backend), lambda: served_serial(agent))
    traffic = Traffic(gateway)
    traffic.start()
    try:
        # Stop the CA well before the renewal point of the current certificate (40-60% of TTL).
        current = wait_for_default(agent)["default"]
        not_after = dt.datetime.fromisoformat(current["not_after"])
        log_mark = len(agent.log_lines())
        t_stop = time.monotonic()
        graceful = ca.stop(10)
        remaining = (not_after - dt.datetime.now(dt.timezone.utc)).total_seconds()
        print(f"\nCA stopped (SIGTERM, exit code {ca.exit_code}, graceful={graceful}); "
              f"serial {current['serial']} has {remaining:.1f}s left")
        assert graceful, "`ca serve` did not exit within 10s of SIGTERM"

        # Outage: keep the CA down until the agent has failed to renew twice (or until the
        # certificate would get too close to its expiry), checking all along that it is served.
        deadline = time.monotonic() + remaining - 12
        checks = 0
        failures: list[str] = []
        while True:
            failures = [l for l in agent.log_lines()[log_mark:] if COULD_NOT_RENEW in l]
            if len(failures) >= 2 or time.monotonic() >= deadline:
                break
            outcome, secrets = try_fetch(agent)
            assert outcome == "ok" and "default" in secrets, f"nothing served during the outage: {outcome}"
            assert norm_serial(secrets["default"]["serial"]) == norm_serial(current["serial"]), secrets["default"]
            checks += 1
            time.sleep(0.5)
        assert failures, f"the agent never tried to renew during a {time.monotonic() - t_stop:.0f}s outage"
        for line in failures:
            assert "retry_in=" in line, line
        new_ca = start_ca_serve(state_dir=ca.state_dir, port=ca.port, jwt_keys_file=jwt_keys.pem_path)
        t_ready = new_ca.ready_at
        outage = t_ready - t_stop
        lines_at_ready = agent.log_lines()
        failures_before_ready = [l for l in lines_at_ready[log_mark:] if COULD_NOT_RENEW in l]
        pending_retry = parse_retry_in(failures_before_ready[-1])
        retries = [parse_retry_in(l) for l in failures_before_ready]

        s2 = wait_for_default(agent, timeout=max(30.0, pending_retry + 10), other_than=current["serial"])
        t_new = time.monotonic()
        held = wait_envoys_hold((gateway, backend), lambda: served_serial(agent))
        assert held != norm_serial(current["serial"])
    finally:
        traffic.stop()
    after_ready = [l for l in agent.log_lines()[len(lines_at_ready):] if COULD_NOT_RENEW in l]
    to_new = t_new - t_ready
    print(f"outage={outage:.1f}s (shorter than the {remaining:.1f}s left) served-checks={checks} "
          f"renewal failures during outage={len(failures_before_ready)} retry_in={[f'{r:.2f}s' for r in retries]} "
          f"failures after restart={len(after_ready)}")
    print(f"CA restart -> new serial: {to_new:.2f}s (bound: pending retry_in {pending_retry:.2f}s + 3s slack); "
          f"requests={traffic.sent} failed={len(traffic.failures)}")
    assert outage < remaining, (outage, remaining)
    assert not traffic.failures, f"{len(traffic.failures)}/{traffic.sent} requests failed: {traffic.failures[:10]}"
    assert traffic.sent >= 100, traffic.sent
    assert to_new <= pending_retry + 3.0, (
        f"new serial {to_new:.1f}s after the CA restart, more than one backoff interval ({pending_retry:.1f}s)")
    assert new_ca.root_path.read_text() == root_before, "`ca serve` made a new root on restart with the same state dir"
    verify_served(s2, root_before, tmp_path)
    assert_envoys_intact((gateway, backend), pids)
    assert agent.alive()


# --------------------------------------------------------------------------- d: ca serve refusals


def make_csr(uris=(SPIFFE_ID,), dns=(), ips=(), cn: str | None = None, key=None) -> str:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = key or istio_ca.new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    sans = ([x509.UniformResourceIdentifier(u) for u in uris] + [x509.DNSName(d) for d in dns]
            + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def corrupt_signature(csr_pem: str) -> str:
    """Same CSR, one bit of its signature flipped: parses, but does not verify."""
    import base64

    body = "".join(l for l in csr_pem.splitlines() if not l.startswith("-----"))
    der = bytearray(base64.b64decode(body))
    der[-3] ^= 0x01  # inside the signature's final INTEGER
    b64 = base64.b64encode(bytes(der)).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN CERTIFICATE REQUEST-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE REQUEST-----\n"


@pytest.fixture(scope="module")
def ca_client(module_ca_serve):
    ca_pb2, ca_pb2_grpc = istio_ca.load_protos()
    channel = grpc.secure_channel(module_ca_serve.address,
                                  grpc.ssl_channel_credentials(module_ca_serve.root_path.read_bytes()))
    stub = ca_pb2_grpc.IstioCertificateServiceStub(channel)

    def call(csr: str, token: str | None, validity: int = 600):
        md = [("clusterid", "Kubernetes")] + ([("authorization", f"Bearer {token}")] if token is not None else [])
        return stub.CreateCertificate(ca_pb2.IstioCertificateRequest(csr=csr, validity_duration=validity),
                                      metadata=md, timeout=15)

    yield call
    channel.close()


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_fetch_mode_ca_serve_issues_for_a_good_caller(alg, ca_client, module_ca_serve, jwt_keys, tmp_path):
    """Control for the refusals below: the same client, TLS and token path succeed."""
    from cryptography import x509

    key = istio_ca.new_key()
    resp = ca_client(make_csr(key=key), jwt_keys.mint(alg=alg, aud=["other-audience", "istio-ca"]), validity=600)
    chain = list(resp.cert_chain)
    roots = list(resp.root_cert.ca_cert)
    root_pem = module_ca_serve.root_path.read_text()
    print(f"{alg}: cert_chain has {len(chain)} element(s), root_cert.ca_cert {len(roots)}")
    assert len(chain) >= 2, chain
    assert certs_der(chain[-1]) == certs_der(root_pem), "cert_chain does not end with the root (legacy clients)"
    assert [d for r in roots for d in certs_der(r)] == certs_der(root_pem), "root_cert.ca_cert is not the root"
    leaf = x509.load_pem_x509_certificate(chain[0].encode())
    assert leaf.public_key().public_numbers() == key.public_key().public_numbers(), "leaf does not hold our key"
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [SPIFFE_ID]
    lifetime = (leaf.not_valid_after_utc - leaf.not_valid_before_utc).total_seconds()
    assert 600 <= lifetime <= 660, lifetime
    verify_served({"ROOTCA": {"pem": root_pem}, "default": {"pem": "".join(chain[:-1])}}, root_pem, tmp_path)


REFUSALS = {
    # name: (status, CSR kwargs | "garbage" | "bad-signature", mint() kwargs | None (no header) | raw token,
    #        regex the message must match: it says what was wrong)
    "missing-token": (grpc.StatusCode.UNAUTHENTICATED, {}, None,
                      r"missing|no (bearer )?token|no authorization|required|absent|without"),
    "token-signed-by-unknown-key": (grpc.StatusCode.UNAUTHENTICATED, {}, {"unpublished_key": True},
                                    r"signature|verif"),
    "expired-token": (grpc.StatusCode.UNAUTHENTICATED, {}, {"exp_in": -120}, r"expired"),
    "wrong-audience": (grpc.StatusCode.UNAUTHENTICATED, {}, {"aud": "not-the-ca"}, r"\baud\b|audience|not-the-ca"),
    "wrong-issuer": (grpc.StatusCode.UNAUTHENTICATED, {}, {"iss": "https://issuer.invalid"},
                     r"\biss\b|issuer|issuer\.invalid"),
    "not-a-jwt": (grpc.StatusCode.UNAUTHENTICATED, {}, "garbage-token", r"token|jwt|malformed|decode"),
    "csr-for-another-identity": (grpc.StatusCode.PERMISSION_DENIED,
                                 {"uris": ("spiffe://cluster.local/ns/other/sa/intruder",)}, {},
                                 r"spiffe://cluster\.local/ns/other/sa/intruder"),
    "csr-with-dns-san": (grpc.StatusCode.PERMISSION_DENIED, {"dns": ("evil.example.com",)}, {},
                         r"\bdns\b|evil\.example\.com"),
    "csr-with-ip-san": (grpc.StatusCode.PERMISSION_DENIED, {"ips": ("10.0.0.1",)}, {}, r"\bip\b|ipaddress|10\.0\.0\.1"),
    "csr-with-common-name": (grpc.StatusCode.PERMISSION_DENIED, {"cn": "evil"}, {},
                             r"\bcn\b|common ?name|subject"),
    "garbage-csr": (grpc.StatusCode.INVALID_ARGUMENT, "garbage", {}, r"csr|pem|parse|certificate request"),
    "csr-with-bad-signature": (grpc.StatusCode.INVALID_ARGUMENT, "bad-signature", {}, r"signature"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_fetch_mode_ca_serve_refuses(case, ca_client, jwt_keys):
    status, csr_spec, token_spec, pattern = REFUSALS[case]
    if csr_spec == "garbage":
        csr = "-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgY3Ny\n-----END CERTIFICATE REQUEST-----\n"
    elif csr_spec == "bad-signature":
        csr = corrupt_signature(make_csr())
    else:
        csr = make_csr(**({"uris": (SPIFFE_ID,)} | csr_spec))
    if token_spec is None:
        token = None
    elif isinstance(token_spec, str):
        token = token_spec
    else:
        token = jwt_keys.mint(**token_spec)
    with pytest.raises(grpc.RpcError) as info:
        resp = ca_client(csr, token)
        print(f"unexpected success: {len(resp.cert_chain)} certificate(s)")
    err = info.value
    print(f"{case}: {err.code().name} {err.details()!r}")
    assert err.code() == status, f"{case}: got {err.code().name} ({err.details()!r}), want {status.name}"
    assert re.search(pattern, err.details() or "", re.I), f"{case}: message {err.details()!r} !~ /{pattern}/"


# --------------------------------------------------------------------------- the test CA itself


@pytest.mark.parametrize("mode", istio_ca.MODES)
def test_fetch_mode_python_ca_misbehaves_as_told(mode, start_python_ca, tmp_path):
    """Each mode of istio_ca.py does what test e relies on (and only that), checked with openssl and
    cryptography, so a passing test e means the agent refused a really bad answer."""
    from cryptography import x509

    ca = start_python_ca(mode)
    ca_pb2, ca_pb2_grpc = istio_ca.load_protos()
    # Connect by name with the root it wrote: also proves the serving certificate and --ca-root file.
    channel = grpc.secure_channel(ca.address, grpc.ssl_channel_credentials(ca.root_path.read_bytes()),
                                  options=[("grpc.ssl_target_name_override", "localhost")])
    key = istio_ca.new_key()
    try:
        resp = ca_pb2_grpc.IstioCertificateServiceStub(channel).CreateCertificate(
            ca_pb2.IstioCertificateRequest(csr=make_csr(key=key), validity_duration=30), timeout=15)
    finally:
        channel.close()
    assert len(resp.cert_chain) == 2 and not resp.HasField("root_cert"), "not a legacy [leaf, root] answer"
    assert certs_der(resp.cert_chain[1]) == certs_der(ca.root_path.read_text())
    leaf = x509.load_pem_x509_certificate(resp.cert_chain[0].encode())
    same_key = leaf.public_key().public_numbers() == key.public_key().public_numbers()
    uris = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier)
    now = dt.datetime.now(dt.timezone.utc)
    valid_now = leaf.not_valid_before_utc <= now < leaf.not_valid_after_utc
    (tmp_path / "leaf.pem").write_text(resp.cert_chain[0])
    verifies = subprocess.run(["openssl", "verify", "-no_check_time", "-CAfile", str(ca.root_path),
                               str(tmp_path / "leaf.pem")], capture_output=True).returncode == 0
    got = {"same_key": same_key, "uris": uris, "valid_now": valid_now, "chains_to_root": verifies}
    want = {"same_key": mode != "wrong-key", "uris": [istio_ca.WRONG_SAN if mode == "wrong-san" else SPIFFE_ID],
            "valid_now": mode != "expired", "chains_to_root": mode != "untrusted"}
    print(f"{mode}: {got}")
    assert got == want
    assert [r["mode"] for r in ca.requests()] == [mode]


# --------------------------------------------------------------------------- e: agent refusals

BAD_MODES = {
    # mode: regex the reason of the rejection must match
    "wrong-key": r"\bkey\b",
    "wrong-san": re.escape(istio_ca.WRONG_SAN) + r"|\bsan\b|subject alternative name",
    "expired": r"expired|not valid|validity",
    "untrusted": r"verif|root|chain|issuer|trust",
}


def rejection_reason(line: str) -> str:
    """The reason= field of a rejection line (quoted, or bare up to the next field or message)."""
    m = re.search(r'\breason="((?:[^"\\]|\\.)*)"', line) or re.search(
        r"\breason=(.*?)(?=\s+\[\w+\]\s|\s+[a-z_]+=|$)", line)
    return (m.group(1) if m else line.split(REJECTED, 1)[1]).strip(" :")


def rejection_reason_ok(line: str, mode: str) -> bool:
    return re.search(BAD_MODES[mode], rejection_reason(line), re.I) is not None


@pytest.mark.parametrize("mode", list(BAD_MODES))
def test_fetch_mode_agent_rejects_bad_first_answer(mode, start_python_ca, start_agent, jwt_keys, tmp_path):
    ca = start_python_ca(mode)
    token = jwt_keys.write_token(tmp_path / "token")
    agent = start_agent("20s", extra_args=fetch_mode_args(ca, token))
    _, line = agent.wait_log(REJECTED, 30, what=f"'{REJECTED}'")
    print(f"{mode}: {line}")
    assert rejection_reason_ok(line, mode), f"{mode}: the rejection gives no matching reason: {line}"
    idx, again = agent.wait_log(REJECTED, 30, start=agent.log_lines().index(line) + 1,
                              what="a second rejection (retry)")
    outcome, secrets = try_fetch(agent)
    print(f"{mode}: fetch while only bad answers exist -> {outcome}, names {sorted(secrets)}")
    assert "default" not in secrets, f"{mode}: the agent serves {secrets['default']}"
    assert agent.alive(), f"the agent exited with code {agent.proc.poll()}"
    bad = {r["serial"] for r in ca.requests()}
    assert len(bad) >= 2 and all(r["mode"] == mode for r in ca.requests())
    # It recovers as soon as the CA answers correctly (so it was refusing, not broken).
    ca.set_mode("good")
    t0 = time.monotonic()
    secrets = wait_for_default(agent, timeout=90)
    print(f"{mode}: first good certificate {time.monotonic() - t0:.1f}s after the CA turned good")
    assert norm_serial(secrets["default"]["serial"]) not in {norm_serial(s) for s in bad}
    verify_served(secrets, ca.root_path.read_text(), tmp_path)


@pytest.mark.parametrize("mode", list(BAD_MODES))
def test_fetch_mode_agent_rejects_bad_renewal(mode, start_python_ca, start_agent, jwt_keys, tmp_path):
    ca = start_python_ca("good")
    token = jwt_keys.write_token(tmp_path / "token")
    # 40 s: the current certificate must outlive the renewal point plus a slow CA round trip.
    agent = start_agent("40s", extra_args=fetch_mode_args(ca, token))
    s1 = wait_for_default(agent)["default"]
    mark = len(agent.log_lines())
    ca.set_mode(mode)
    idx, line = agent.wait_log(REJECTED, 45, start=mark, what=f"'{REJECTED}' after the switch to {mode}")
    print(f"{mode}: {line}")
    assert rejection_reason_ok(line, mode), f"{mode}: the rejection gives no matching reason: {line}"
    _, retry = agent.wait_log(COULD_NOT_RENEW, 15, start=mark, what=f"'{COULD_NOT_RENEW}'")
    outcome, secrets = try_fetch(agent)
    left = (dt.datetime.fromisoformat(s1["not_after"]) - dt.datetime.now(dt.timezone.utc)).total_seconds()
    print(f"{mode}: retry in {parse_retry_in(retry):.2f}s; fetch -> {outcome}; first certificate has {left:.1f}s left")
    assert outcome == "ok", f"{mode}: the agent stopped serving ({left:.1f}s before not_after): {outcome}"
    bad = {norm_serial(r["serial"]) for r in ca.requests() if r["mode"] == mode}
    served = norm_serial(secrets["default"]["serial"])
    print(f"{mode}: still serving {served} (first {norm_serial(s1['serial'])}); {len(bad)} bad answer(s) refused")
    assert bad
    assert served not in bad, f"{mode}: the agent serves a certificate from a bad answer"
    assert served == norm_serial(s1["serial"]), f"{mode}: serial changed from {s1['serial']} to {served}"
    assert agent.alive(), f"the agent exited with code {agent.proc.poll()}"
