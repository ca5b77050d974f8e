"""`sds-agent ca serve` rotates its root in stages, driven by `sds-agent ca rotate-root --admin`:

prepare  every answer carries both roots (cert_chain's last element and root_cert), the old root
         still signs, and `ca serve` is restarted: it resumes at the recorded switch_at;
switch   at switch_at (no acknowledgements to wait for): leaves chain to the new root, and a NEW
         TLS connection is served a certificate of the new root;
retire   one --max-ttl after the switch: only the new root is left.
An overlap shorter than --max-ttl is refused, at start and per rotation, saying why.

Checked with a real gRPC client (a fresh channel per request, trusting only the root under test),
Python's ssl for the serving certificate, and `openssl verify` for the leaves.

Run: SDS_AGENT_BIN=.build/debug/sds-agent .venv/bin/python -m pytest Tests/e2e/test_ca_serve_rotation.py -q -s
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
import subprocess
import time
from pathlib import Path

import grpc

import istio_ca
from conftest import agent_bin
from daemon_support import AdminClient, poll
from test_daemon import run_cli
from test_fetch_mode import certs_der, make_csr

MAX_TTL = "10s"
OVERLAP = "10s"
TOO_SHORT = "5s"
TOO_SHORT_MESSAGE = ("too short", "at least --max-ttl (10s)", "only when it renews")


def request(ca, trusted_root: Path, jwt_keys, validity: int = 10):
    """CreateCertificate on a new connection that trusts only `trusted_root`: (leaf PEM, the roots
    at the end of cert_chain, the roots in root_cert.ca_cert), each root as DER."""
    ca_pb2, ca_pb2_grpc = istio_ca.load_protos()
    channel = grpc.secure_channel(ca.address, grpc.ssl_channel_credentials(trusted_root.read_bytes()),
                                  options=[("grpc.use_local_subchannel_pool", 1)])
    try:
        response = ca_pb2_grpc.IstioCertificateServiceStub(channel).CreateCertificate(
            ca_pb2.IstioCertificateRequest(csr=make_csr(key=istio_ca.new_key()), validity_duration=validity),
            metadata=[("authorization", f"Bearer {jwt_keys.mint()}")], timeout=15)
    finally:
        channel.close()
    chain = list(response.cert_chain)
    return chain[0], certs_der(chain[-1]), [d for r in response.root_cert.ca_cert for d in certs_der(r)]


def serving_leaf(ca, trusted_root: Path) -> str:
    """The TLS certificate a NEW connection is served, verified against `trusted_root` alone (and
    the name 127.0.0.1); ssl.SSLCertVerificationError when it does not chain to it."""
    context = ssl.create_default_context(cafile=str(trusted_root))
    with socket.create_connection(("127.0.0.1", ca.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True))


def verifies(leaf_pem: str, root: Path, tmp_path: Path, purpose: str) -> bool:
    leaf = tmp_path / "leaf-under-test.pem"
    leaf.write_text(leaf_pem)
    res = subprocess.run(["openssl", "verify", "-CAfile", str(root), "-purpose", purpose, str(leaf)],
                         capture_output=True, text=True)
    return res.returncode == 0


def der(path: Path) -> bytes:
    (only,) = certs_der(path.read_text())
    return only


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_ca_serve_rotates_its_root_and_its_tls_certificate(start_ca_serve, free_port, jwt_keys, tmp_path):
    admin_address = f"127.0.0.1:{free_port()}"
    args = ["--max-ttl", MAX_TTL, "--root-overlap", OVERLAP, "--admin", admin_address]
    ca = start_ca_serve(extra_args=args)
    admin = AdminClient(admin_address)
    state = ca.state_dir
    old_root = tmp_path / "old-root.pem"
    old_root.write_text(ca.root_path.read_text())
    idle = admin.json("/debug/trust")
    assert idle["phase"] == "idle" and idle["rotatable"] is True and len(idle["roots"]) == 1, idle
    assert admin.get("/healthz").strip() == "ok"

    # An overlap shorter than --max-ttl is refused, saying that agents learn the root only by renewing.
    short = run_cli("ca", "rotate-root", "--admin", admin_address, "--overlap", TOO_SHORT)
    assert short.returncode == 1 and all(m in short.stderr for m in TOO_SHORT_MESSAGE), (short.returncode, short.stderr)
    assert admin.json("/debug/trust")["phase"] == "idle"

    t0 = time.monotonic()
    timeline = {}
    res = run_cli("ca", "rotate-root", "--admin", admin_address)
    assert res.returncode == 0, res.stderr
    prepared = json.loads(res.stdout)
    rotation = prepared["rotation"]
    new_serial, switch_at = rotation["new_root"], rotation["switch_at"]
    assert prepared["phase"] == "prepared" and rotation["overlap"] == OVERLAP, prepared
    assert {r["serial"]: r["phase"] for r in prepared["roots"]} == {rotation["old_root"]: "signing", new_serial: "next"}
    again = run_cli("ca", "rotate-root", "--admin", admin_address)
    assert again.returncode == 1 and "phase prepared" in again.stderr, (again.returncode, again.stderr)
    assert mode(state / "ca-next-key.pem") == 0o600
    new_root = tmp_path / "new-root.pem"
    new_root.write_text((state / "ca-next-cert.pem").read_text())
    both = {der(old_root), der(new_root)}

    # The overlap: both roots in both response styles; the old root still signs.
    leaf, chain_roots, explicit_roots = request(ca, old_root, jwt_keys)
    assert set(chain_roots) == both and len(chain_roots) == 2, "cert_chain's last element is not both roots"
    assert set(explicit_roots) == both and len(explicit_roots) == 2, "root_cert.ca_cert is not both roots"
    assert verifies(leaf, old_root, tmp_path, "sslclient") and not verifies(leaf, new_root, tmp_path, "sslclient")
    assert verifies(serving_leaf(ca, old_root), old_root, tmp_path, "sslserver")
    timeline["overlap checked"] = time.monotonic() - t0

    # Restart `ca serve` in the overlap: it resumes at the recorded deadlines.
    assert ca.stop(), "ca serve did not stop on SIGTERM"
    ca = start_ca_serve(state_dir=state, port=ca.port, extra_args=args)
    timeline["ca serve restarted"] = time.monotonic() - t0
    resumed = admin.json("/debug/trust")
    assert resumed["phase"] == "prepared", resumed
    assert resumed["rotation"]["switch_at"] == switch_at and resumed["rotation"]["new_root"] == new_serial
    assert any("root rotation: resuming" in line for line in ca.log_lines()), ca.tail()
    _, chain_roots, _ = request(ca, old_root, jwt_keys)
    assert set(chain_roots) == both, "the restarted ca serve does not answer with both roots"

    # The switch, at switch_at: leaves and the serving certificate of a new connection chain to the new root.
    switched = poll(lambda: (t := admin.json("/debug/trust"))["phase"] == "switched" and t, 30, what="the switch")
    timeline["switched"] = time.monotonic() - t0
    assert switched["rotation"]["switched_at"] >= switch_at, switched
    assert {r["serial"]: r["phase"] for r in switched["roots"]} == {rotation["old_root"]: "previous",
                                                                     new_serial: "signing"}
    assert der(ca.root_path) == der(new_root), "ca-cert.pem is not the new root after the switch"
    served = serving_leaf(ca, new_root)
    assert verifies(served, new_root, tmp_path, "sslserver") and not verifies(served, old_root, tmp_path, "sslserver")
    try:
        serving_leaf(ca, old_root)
        raise AssertionError("a new connection trusting only the old root still verifies after the switch")
    except ssl.SSLCertVerificationError:
        pass
    leaf, chain_roots, explicit_roots = request(ca, new_root, jwt_keys)
    assert set(chain_roots) == both and set(explicit_roots) == both
    assert verifies(leaf, new_root, tmp_path, "sslclient") and not verifies(leaf, old_root, tmp_path, "sslclient")
    timeline["switch checked"] = time.monotonic() - t0

    # The retirement, one --max-ttl after the switch: only the new root is left.
    retired = poll(lambda: (t := admin.json("/debug/trust"))["phase"] == "idle" and t, 30, interval=0.5,
                   what="the retirement")
    timeline["retired"] = time.monotonic() - t0
    assert [r["serial"] for r in retired["roots"]] == [new_serial], retired
    leaf, chain_roots, explicit_roots = request(ca, new_root, jwt_keys)
    assert chain_roots == [der(new_root)] and explicit_roots == [der(new_root)]
    assert verifies(leaf, new_root, tmp_path, "sslclient")
    assert not (state / "root-rotation.json").exists() and not (state / "ca-previous-cert.pem").exists()
    assert mode(state / "ca-key.pem") == 0o600
    print("\n" + " ".join(f"{k}=+{v:.1f}s" for k, v in timeline.items()))


def test_ca_serve_refuses_an_overlap_shorter_than_max_ttl_at_start(free_port, jwt_keys, tmp_path):
    argv = [str(agent_bin()), "ca", "serve", "--listen", f"127.0.0.1:{free_port()}", "--state-dir",
            str(tmp_path / "state"), "--jwt-keys", str(jwt_keys.jwks_path), "--max-ttl", MAX_TTL,
            "--root-overlap", TOO_SHORT]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0, res.stdout
    assert "root-overlap" in res.stderr and all(m in res.stderr for m in TOO_SHORT_MESSAGE[1:]), res.stderr


def test_ca_serve_with_the_operators_ca_refuses_to_rotate(start_ca_serve, free_port, tmp_path):
    # The operator's files, kept where the fixture expects the root clients trust.
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    key, cert = istio_ca.make_root("operator root")
    (state / "ca-cert.pem").write_text(istio_ca.pem_cert(cert))
    key_path = state / "ca-key.pem"
    key_path.write_bytes(istio_ca.pem_key(key))
    key_path.chmod(0o600)
    admin_address = f"127.0.0.1:{free_port()}"
    start_ca_serve(state_dir=state, extra_args=["--ca-cert", state / "ca-cert.pem", "--ca-key", key_path,
                                                "--admin", admin_address])
    admin = AdminClient(admin_address)
    status, body, _ = admin.request("POST", "/ca/rotate-root")
    assert status == 409 and "operator's files" in body, (status, body)
    trust = admin.json("/debug/trust")
    assert trust["rotatable"] is False and "--ca-cert" in trust["not_rotatable"], trust
    assert not (state / "ca-next-cert.pem").exists()


def test_ca_serve_admin_on_tcp_refuses_web_pages(start_ca_serve, free_port):
    """`ca serve`'s admin endpoint has the agent's Origin/Host check: a cross-site POST cannot
    start a root rotation, a DNS-rebound Host cannot read the trust; `ca rotate-root` still works."""
    from test_daemon import _raw_admin

    port = free_port()
    admin_address = f"127.0.0.1:{port}"
    start_ca_serve(extra_args=["--max-ttl", MAX_TTL, "--root-overlap", OVERLAP, "--admin", admin_address])
    admin = AdminClient(admin_address)
    status, body = _raw_admin(admin_address, "POST", f"/ca/rotate-root?overlap={OVERLAP}",
                              {"Host": admin_address, "Origin": "http://evil.example"})
    assert status == 403 and "Origin http://evil.example" in body, (status, body)
    status, body = _raw_admin(admin_address, "GET", "/debug/trust", {"Host": f"evil.example:{port}"})
    assert status == 403 and "roots" not in body, (status, body)
    assert admin.json("/debug/trust")["phase"] == "idle", "a refused cross-site POST started a rotation"
    res = run_cli("ca", "rotate-root", "--admin", admin_address)
    assert res.returncode == 0, res.stderr
    assert admin.json("/debug/trust")["phase"] == "prepared"
