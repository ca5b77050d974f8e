"""Revocation that reaches Envoy (issue #23), with the agent's embedded CA.

gateway Envoy (plain HTTP in) --mTLS--> backend Envoy validating with ROOTCA, and a second backend
validating with ALL (Envoy's SPIFFE validator), all getting their secrets from one sds-agent. The
certificate every Envoy holds is revoked with `sds-agent ca revoke --serial`: within 5 s, a TLS
client presenting it (saved with its key before) is refused by both backends, the Envoys hold a
new certificate, and traffic through the gateway flows. `GET /ca/crl` verifies against the root.
"""

import http.client
import json
import ssl
import subprocess
import time

from conftest import agent_bin, norm_serial, wait_envoys_hold
from daemon_support import AdminClient

WINDOW = 5.0  # seconds within which the revocation must be enforced and the holder re-issued


def get(port: int):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/hello")
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def stat(envoy, name: str) -> int:
    for line in envoy.admin(f"/stats?filter=^{name}$").splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    return -1


def mtls_get(port: int, cert, key, root) -> str:
    """A new TLS connection presenting cert/key: 'ok' on a 200, else what went wrong."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(str(root))
    context.load_cert_chain(str(cert), str(key))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    try:
        conn.request("GET", "/hello")
        resp = conn.getresponse()
        resp.read()
        return "ok" if resp.status == 200 else f"status {resp.status}"
    except (OSError, http.client.HTTPException) as e:
        return repr(e)
    finally:
        conn.close()


def test_revoked_certificate_is_refused_and_its_holder_reissued(start_agent, start_envoy, free_port, tmp_path):
    admin = f"127.0.0.1:{free_port()}"
    agent = start_agent(cert_ttl="600s", extra_args=["--admin", admin])
    backend = start_envoy("backend", agent.socket_path)
    spiffe_backend = start_envoy("backend-spiffe", agent.socket_path)
    gateway = start_envoy("gateway", agent.socket_path, BACKEND_PORT=backend.listen_port)
    assert get(gateway.listen_port) == 200

    secrets, _ = agent.fetch("default", "ROOTCA", extra=["--show-key"])
    by_name = {s["name"]: s for s in secrets}
    old_serial = norm_serial(by_name["default"]["serial"])
    wait_envoys_hold((gateway, backend, spiffe_backend), old_serial, timeout=30)
    (tmp_path / "old.pem").write_text(by_name["default"]["pem"])
    (tmp_path / "old.key").write_text(by_name["default"]["private_key"])
    (tmp_path / "root.pem").write_text(by_name["ROOTCA"]["pem"])
    old = (tmp_path / "old.pem", tmp_path / "old.key", tmp_path / "root.pem")
    for envoy in (backend, spiffe_backend):
        assert mtls_get(envoy.listen_port, *old) == "ok", f"{envoy.name} refuses the certificate before revocation"

    t0 = time.monotonic()
    res = subprocess.run(
        [str(agent_bin()), "ca", "revoke", "--serial", old_serial.upper(), "--reason", "keyCompromise",
         "--admin", admin], capture_output=True, text=True, timeout=30)
    answered = time.monotonic() - t0
    assert res.returncode == 0, f"ca revoke exited {res.returncode}\n{res.stdout}\n{res.stderr}"
    revoked = json.loads(res.stdout)
    assert [norm_serial(s) for s in revoked["serials"]] == [old_serial], revoked
    assert revoked["reason"] == "key-compromise" and revoked["reissued"], revoked

    refused_after = {}
    while len(refused_after) < 2:
        for envoy in (backend, spiffe_backend):
            if envoy.name not in refused_after and mtls_get(envoy.listen_port, *old) != "ok":
                refused_after[envoy.name] = time.monotonic() - t0
        assert time.monotonic() - t0 < WINDOW, f"the revoked certificate is still accepted: refused by {refused_after}"
        time.sleep(0.05)

    for envoy in (backend, spiffe_backend):
        # Refused by certificate verification (the CRL), not by anything else.
        failures = stat(envoy, f"listener.127.0.0.1_{envoy.listen_port}.ssl.fail_verify_error")
        assert failures >= 1, f"{envoy.name}: ssl.fail_verify_error is {failures}"

    new_serial = wait_envoys_hold(
        (gateway, backend, spiffe_backend),
        lambda: next(s for s in agent.fetch("default")[0] if s["name"] == "default")["serial"], timeout=WINDOW)
    held_after = time.monotonic() - t0
    assert new_serial != old_serial

    failures = [status for status in (get(gateway.listen_port) for _ in range(20)) if status != 200]
    assert not failures, f"requests through the gateway failed after the re-issue: {failures}"

    crl = AdminClient(admin).get("/ca/crl")
    (tmp_path / "crl.pem").write_text(crl)
    verify = subprocess.run(
        ["openssl", "crl", "-in", str(tmp_path / "crl.pem"), "-CAfile", str(tmp_path / "root.pem"), "-verify",
         "-noout", "-text"], capture_output=True, text=True)
    assert verify.returncode == 0 and "verify OK" in verify.stderr + verify.stdout, verify.stderr
    assert old_serial.upper() in verify.stdout.replace(":", "").upper(), verify.stdout
    assert "Key Compromise" in verify.stdout, verify.stdout
    print(f"\nca revoke answered after {answered:.2f}s; the old certificate was refused after "
          + ", ".join(f"{name} {t:.2f}s" for name, t in refused_after.items())
          + f"; every Envoy held the new serial {new_serial} after {held_after:.2f}s")
