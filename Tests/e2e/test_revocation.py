"""Revocation that reaches Envoy (issue #23), with the agent's embedded CA.

gateway Envoy (plain HTTP in) --mTLS--> backend Envoy validating with ROOTCA, and a second backend
validating with ALL (Envoy's SPIFFE validator), all getting their secrets from one sds-agent. The
certificate every Envoy holds is revoked with `sds-agent ca revoke --serial`: within 5 s, a TLS
client presenting it (saved with its key before) is refused by both backends, the Envoys hold a
new certificate, and traffic through the gateway flows. `GET /ca/crl` verifies against the root;
`/debug/trust`, `/metrics`, `sds-agent status` and the log show the list and the revocation.

The same with `ca revoke --identity` (every unexpired certificate of the identity), across an agent
restart on the same state directory, and across a staged root rotation (both roots' lists served
while both are trusted; a certificate revoked before the switch stays refused after it); and
`sds-agent drill --revoke` against a real agent. A file validation context naming its own CRL
file (`--secret name=clients,ca=FILE,crl=FILE`) is enforced by Envoy, and a new list written over
the file refuses a newly listed client.
"""

import http.client
import json
import os
import ssl
import subprocess
import time

import pytest

from conftest import SPIFFE_ID, Envoy, agent_bin, envoy_bin, norm_serial, wait_envoys_hold
from daemon_support import AdminClient, poll
from test_daemon import run_cli, start  # noqa: F401 - `start` is a fixture
from test_file_secrets import CA, write
from test_root_rotation import envoy_ca_serials

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

    # Observable: the list in /debug/trust, the gauge, `status`, and one notice per revocation.
    trust = AdminClient(admin).json("/debug/trust")
    (listed,) = trust["revocation_lists"]
    (root,) = trust["roots"]
    assert listed["issuer_root"] == root["serial"] and listed["entries"] == 1, listed
    assert listed["issuer"] == root["subject"] and listed["next_update"] > listed["this_update"], listed
    metrics = AdminClient(admin).get("/metrics")
    assert 'sds_agent_crl_entries{trust_domain="cluster.local"} 1.0' in metrics.splitlines(), metrics
    status = run_cli("status", "--admin", admin)
    assert "revocation lists: 1" in status.stdout and f"number {listed['number']}, 1 revoked" in status.stdout, \
        status.stdout
    notices = [line for line in agent.log_lines() if " notice revoked a certificate" in line]
    assert len(notices) == 1, agent.tail()
    assert old_serial in notices[0] and SPIFFE_ID in notices[0] and "key-compromise" in notices[0], notices
    assert not any("PRIVATE KEY" in line for line in agent.log_lines())


# --------------------------------------------------------------------------- the variants


def hold(agent, tmp_path, name: str):
    """The certificate the agent serves now, saved with its key and the bundle: (serial, (cert, key, roots))."""
    secrets, _ = agent.fetch("default", "ROOTCA", extra=["--show-key"])
    by_name = {s["name"]: s for s in secrets}
    (tmp_path / f"{name}.pem").write_text(by_name["default"]["pem"])
    (tmp_path / f"{name}.key").write_text(by_name["default"]["private_key"])
    (tmp_path / f"{name}-roots.pem").write_text(by_name["ROOTCA"]["pem"])
    return norm_serial(by_name["default"]["serial"]), tuple(
        tmp_path / f"{name}{suffix}" for suffix in (".pem", ".key", "-roots.pem"))


def revoke(admin: str, *target: str) -> dict:
    res = run_cli("ca", "revoke", *target, "--admin", admin, timeout=30)
    assert res.returncode == 0, f"ca revoke exited {res.returncode}\n{res.stdout}\n{res.stderr}"
    return json.loads(res.stdout)


def wait_refused(backends, creds, t0: float) -> dict:
    """Seconds since t0 at which each backend first refused a new connection presenting `creds`."""
    refused = {}
    while len(refused) < len(backends):
        for envoy in backends:
            if envoy.name not in refused and mtls_get(envoy.listen_port, *creds) != "ok":
                refused[envoy.name] = time.monotonic() - t0
        assert time.monotonic() - t0 < WINDOW, f"a revoked certificate is still accepted: refused by {refused}"
        time.sleep(0.05)
    return refused


def crls(admin: str, roots, tmp_path, name: str) -> list[str]:
    """Each list of `GET /ca/crl`, verified (openssl crl -verify) against `roots`, as `openssl crl -text`."""
    pem = AdminClient(admin).get("/ca/crl")
    blocks = [b + "-----END X509 CRL-----\n" for b in pem.split("-----END X509 CRL-----\n") if b.strip()]
    texts = []
    for i, block in enumerate(blocks):
        path = tmp_path / f"{name}-{i}.crl.pem"
        path.write_text(block)
        res = subprocess.run(["openssl", "crl", "-in", str(path), "-CAfile", str(roots), "-verify", "-noout", "-text"],
                             capture_output=True, text=True)
        assert res.returncode == 0 and "verify OK" in res.stderr + res.stdout, res.stderr
        texts.append(res.stdout.replace(":", "").upper())
    return texts


def crl_number(text: str) -> int:
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if "CRL NUMBER" in line)
    return int(lines[i + 1].strip(), 0)  # decimal, or 0x-prefixed hex when large


def test_revoking_an_identity_lists_each_unexpired_certificate(start_agent, start_envoy, free_port, tmp_path):
    admin = f"127.0.0.1:{free_port()}"
    agent = start_agent(cert_ttl="600s", extra_args=["--admin", admin])
    backend = start_envoy("backend", agent.socket_path)
    spiffe_backend = start_envoy("backend-spiffe", agent.socket_path)
    gateway = start_envoy("gateway", agent.socket_path, BACKEND_PORT=backend.listen_port)
    backends, envoys = (backend, spiffe_backend), (gateway, backend, spiffe_backend)
    first_serial, first = hold(agent, tmp_path, "first")
    status, _ = AdminClient(admin).rotate()
    assert status == 200
    second_serial, second = hold(agent, tmp_path, "second")
    assert second_serial != first_serial
    wait_envoys_hold(envoys, second_serial, timeout=30)
    for creds in (first, second):
        assert all(mtls_get(e.listen_port, *creds) == "ok" for e in backends)

    t0 = time.monotonic()
    revoked = revoke(admin, "--identity", SPIFFE_ID)
    answered = time.monotonic() - t0
    assert sorted(norm_serial(s) for s in revoked["serials"]) == sorted([first_serial, second_serial]), revoked
    assert revoked["reissued"] == [SPIFFE_ID], revoked
    refused = {name: wait_refused(backends, creds, t0) for name, creds in (("first", first), ("second", second))}
    new_serial = wait_envoys_hold(envoys, lambda: AdminClient(admin).current_serial(), timeout=WINDOW)
    held_after = time.monotonic() - t0
    assert new_serial not in (first_serial, second_serial)
    failures = [status for status in (get(gateway.listen_port) for _ in range(20)) if status != 200]
    assert not failures, f"requests through the gateway failed after the re-issue: {failures}"
    (text,) = crls(admin, first[2], tmp_path, "identity")
    assert first_serial.upper() in text and second_serial.upper() in text and new_serial.upper() not in text, text
    times = "; ".join(f"{cert} refused by " + ", ".join(f"{name} {t:.2f}s" for name, t in by.items())
                      for cert, by in refused.items())
    print(f"\nca revoke --identity answered after {answered:.2f}s; {times}; "
          f"every Envoy held the new serial after {held_after:.2f}s")


def test_a_revocation_survives_an_agent_restart(start, start_envoy, tmp_path):
    agent = start("agent", cert_ttl="600s")
    directory, admin = agent.log_dir, agent.admin_address
    backend = start_envoy("backend", agent.socket_path)
    old_serial, old = hold(agent, tmp_path, "old")
    wait_envoys_hold((backend,), old_serial, timeout=30)
    assert mtls_get(backend.listen_port, *old) == "ok"
    t0 = time.monotonic()
    revoke(admin, "--serial", old_serial)
    wait_refused((backend,), old, t0)
    (before,) = crls(admin, old[2], tmp_path, "before")

    agent.stopped_on_purpose = True
    assert agent.stop(), "the agent did not stop on SIGTERM"
    t0 = time.monotonic()
    agent = start("agent-restarted", cert_ttl="600s", directory=directory, admin=admin)
    restarted = time.monotonic() - t0
    (after,) = crls(admin, old[2], tmp_path, "after")
    assert old_serial.upper() in after, after
    assert crl_number(after) > crl_number(before), (crl_number(before), crl_number(after))
    # An Envoy that only ever saw the restarted agent refuses the old certificate too, and both
    # accept the certificate the restarted agent serves now.
    fresh = start_envoy("backend", agent.socket_path)
    new_serial, new = hold(agent, tmp_path, "new")
    wait_envoys_hold((backend, fresh), new_serial, timeout=30)
    for envoy in (backend, fresh):
        assert mtls_get(envoy.listen_port, *old) != "ok", f"{envoy.name} accepts the revoked certificate"
        assert mtls_get(envoy.listen_port, *new) == "ok", f"{envoy.name} refuses the new certificate"
    print(f"\nrestarted in {restarted:.2f}s; CRL number {crl_number(before)} -> {crl_number(after)}, "
          f"{old_serial} still listed and refused")


def test_a_revocation_holds_across_a_root_rotation(start, start_envoy, tmp_path):
    agent = start("agent", cert_ttl="600s")
    admin = agent.admin_address
    backend = start_envoy("backend", agent.socket_path)
    spiffe_backend = start_envoy("backend-spiffe", agent.socket_path)
    backends = (backend, spiffe_backend)
    old_serial, old = hold(agent, tmp_path, "old")
    wait_envoys_hold(backends, old_serial, timeout=30)
    t0 = time.monotonic()
    revoke(admin, "--serial", old_serial)
    wait_refused(backends, old, t0)
    timeline = {"refused": time.monotonic() - t0}
    # The old root's leaf that replaced it, not revoked: accepted throughout.
    reissued_serial, reissued = hold(agent, tmp_path, "reissued")
    assert reissued_serial != old_serial

    res = run_cli("ca", "rotate-root", "--admin", admin, "--overlap", "3s")
    assert res.returncode == 0, res.stderr
    new_root = json.loads(res.stdout)["rotation"]["new_root"]
    # While both roots are trusted, each signs its own list, and both name the revoked serial.
    trust = poll(lambda: (t := AdminClient(admin).json("/debug/trust")) and len(t["revocation_lists"]) == 2 and t,
                 10, what="both roots' lists")
    timeline["both lists"] = time.monotonic() - t0
    assert {lst["issuer_root"] for lst in trust["revocation_lists"]} == {r["serial"] for r in trust["roots"]}
    assert all(lst["entries"] == 1 for lst in trust["revocation_lists"]), trust["revocation_lists"]
    _, both = hold(agent, tmp_path, "both")
    texts = crls(admin, both[2], tmp_path, "prepared")
    assert len(texts) == 2 and all(old_serial.upper() in t for t in texts), texts
    poll(lambda: all(norm_serial(new_root) in envoy_ca_serials(e) for e in backends), 10,
         what="both backends trusting the new root")
    assert all(mtls_get(e.listen_port, old[0], old[1], both[2]) != "ok" for e in backends)

    poll(lambda: AdminClient(admin).json("/debug/trust")["phase"] == "switched", 30, what="the switch")
    timeline["switched"] = time.monotonic() - t0
    switched = AdminClient(admin).json("/debug/trust")
    assert len(switched["revocation_lists"]) == 2, switched
    new_serial, new = hold(agent, tmp_path, "new")
    wait_envoys_hold(backends, new_serial, timeout=30)
    timeline["new-root leaf held"] = time.monotonic() - t0
    # The old root is still trusted (retiring): the revoked leaf it signed stays refused by the
    # backends' certificate verification, while its unrevoked sibling and the new root's leaf pass.
    # The client trusts both roots: the backends now present new-root leaves.
    assert norm_serial(json.loads(res.stdout)["rotation"]["old_root"]) in envoy_ca_serials(backend)
    for envoy in backends:
        verify_errors = stat(envoy, f"listener.127.0.0.1_{envoy.listen_port}.ssl.fail_verify_error")
        assert mtls_get(envoy.listen_port, old[0], old[1], both[2]) != "ok", \
            f"{envoy.name} accepts the revoked certificate after the switch"
        assert stat(envoy, f"listener.127.0.0.1_{envoy.listen_port}.ssl.fail_verify_error") == verify_errors + 1
        assert mtls_get(envoy.listen_port, reissued[0], reissued[1], both[2]) == "ok", \
            f"{envoy.name} refuses the old root's unrevoked leaf"
        assert mtls_get(envoy.listen_port, *new) == "ok", f"{envoy.name} refuses the new-root certificate"
    print("\n" + " ".join(f"{k}=+{v:.2f}s" for k, v in timeline.items()))


def test_the_revocation_drill_passes_against_a_real_agent(start, tmp_path):
    agent = start("agent", cert_ttl="600s")
    res = run_cli("drill", "--revoke", "--socket", agent.socket_path, "--admin", agent.admin_address, timeout=60)
    print(res.stdout)
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
    lines = res.stdout.splitlines()
    assert lines[0] == "revocation drill: PASSED", res.stdout
    fields = dict(line.strip().split(":", 1) for line in lines[1:] if ":" in line)
    revoked = fields["revoked serial"].strip()
    assert fields["new serial"].strip() not in ("-", revoked), fields
    for step in ("revoke answered", "new certificate", "revocation list"):
        assert fields[step].strip().startswith("+"), fields
    (listed,) = AdminClient(agent.admin_address).json("/debug/trust")["revocation_lists"]
    assert listed["entries"] == 1, listed
    (tmp_path / "roots.pem").write_text(agent.fetch("ROOTCA")[0][0]["pem"])
    (text,) = crls(agent.admin_address, tmp_path / "roots.pem", tmp_path, "drill")
    assert norm_serial(revoked).upper() in text, text


# --------------------------------------------------------------------------- a file secret's own CRL


class CRLSigningCA(CA):
    """The file secrets' test CA, allowed to sign CRLs: without keyUsage cRLSign, OpenSSL (so Envoy)
    refuses every client once a CRL is configured (`key usage does not include CRL signing`)."""

    def __init__(self, directory):
        self.dir, self.count = directory, 0
        self.key, self.cert = directory / "ca.key", directory / "ca.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", self.key, "-out", self.cert, "-days", "2", "-subj", "/CN=client CA",
                        "-addext", "basicConstraints=critical,CA:TRUE",
                        "-addext", "keyUsage=critical,keyCertSign,cRLSign"], check=True, capture_output=True)


def client_cert(ca, name: str, directory) -> tuple:
    """(cert path, key path, serial) of a client certificate the file CA signs."""
    key, csr, cert, ext = (directory / f"{name}.{suffix}" for suffix in ("key", "csr", "pem", "cnf"))
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", csr, "-subj", f"/CN={name}"], check=True, capture_output=True)
    ext.write_text("extendedKeyUsage=clientAuth\n")
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial",
                    "-out", cert, "-days", "1", "-extfile", ext], check=True, capture_output=True)
    serial = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", cert], check=True, capture_output=True,
                            text=True).stdout.strip().split("=", 1)[1]
    return cert, key, int(serial, 16)


def write_crl(ca, path, number: int, serials) -> None:
    """A CRL of the file CA revoking `serials`, written over `path` by a rename."""
    from datetime import datetime, timedelta, timezone

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    issuer = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    now = datetime.now(timezone.utc)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject).last_update(now)
               .next_update(now + timedelta(hours=1)).add_extension(x509.CRLNumber(number), critical=False))
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build())
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    os.rename(tmp, path)


def client_ca_envoy_config(sds_socket, admin_port: int, port: int) -> str:
    sds = ("{resource_api_version: V3, api_config_source: {api_type: GRPC, transport_api_version: V3, "
           "grpc_services: [{envoy_grpc: {cluster_name: sds-grpc}}]}}")
    return f"""
node: {{id: clients, cluster: clients}}
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin_port}}}}}}}
static_resources:
  listeners:
  - name: tls
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: clients
          http_filters: [{{name: envoy.filters.http.router, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}]
          route_config: {{virtual_hosts: [{{name: all, domains: ["*"], routes: [{{match: {{prefix: "/"}}, direct_response: {{status: 200}}}}]}}]}}
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificate_sds_secret_configs: [{{name: web, sds_config: {sds}}}]
            validation_context_sds_secret_config: {{name: clients, sds_config: {sds}}}
  clusters:
  - name: sds-grpc
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: sds-grpc
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{pipe: {{path: "{sds_socket}"}}}}}}}}]}}]
"""


def test_a_file_validation_context_enforces_its_own_crl_file(start, processes, tmp_path, free_port):
    ca = CRLSigningCA(tmp_path)
    cert, key, _ = ca.issue("web.example")
    write(tmp_path / "web.pem", cert)
    write(tmp_path / "web.key", key)
    (a_cert, a_key, a_serial), (b_cert, b_key, b_serial), (c_cert, c_key, _) = (
        client_cert(ca, name, tmp_path) for name in ("client-a", "client-b", "client-c"))
    crl = tmp_path / "clients.crl"
    write_crl(ca, crl, 1, [a_serial])
    agent = start("agent", "--secret", f"name=web,cert={tmp_path / 'web.pem'},key={tmp_path / 'web.key'}",
                  "--secret", f"name=clients,ca={ca.cert},crl={crl}")
    admin_port, port = free_port(), free_port()
    config = tmp_path / "envoy-clients.yaml"
    config.write_text(client_ca_envoy_config(agent.socket_path, admin_port, port))
    envoy = processes.add(Envoy("envoy-clients", [envoy_bin(), "-c", config, "--concurrency", "1",
                                                  "--disable-hot-restart", "-l", "info"], tmp_path, admin_port, port))
    envoy.wait_live()
    verify_errors = f"listener.127.0.0.1_{port}.ssl.fail_verify_error"
    poll(lambda: mtls_get(port, b_cert, b_key, ca.cert) == "ok", 10, what="client B accepted")
    before = stat(envoy, verify_errors)
    assert mtls_get(port, a_cert, a_key, ca.cert) != "ok", "client A, listed in the CRL file, is accepted"
    assert stat(envoy, verify_errors) == before + 1

    t0 = time.monotonic()
    write_crl(ca, crl, 2, [a_serial, b_serial])
    poll(lambda: mtls_get(port, b_cert, b_key, ca.cert) != "ok", 5, interval=0.05,
         what="client B refused once the CRL file lists it")
    refused_after = time.monotonic() - t0
    assert stat(envoy, verify_errors) >= before + 2
    assert mtls_get(port, c_cert, c_key, ca.cert) == "ok", "client C, never listed, is refused"
    assert not any("Envoy refuses every client" in line for line in agent.log_lines()), agent.tail()
    print(f"\na client newly listed in the CRL file was refused {refused_after * 1000:.0f} ms after the file changed")


def test_a_crl_file_whose_ca_may_not_sign_lists_is_served_with_a_warning(start, tmp_path):
    ca = CA(tmp_path)  # keyUsage keyCertSign only
    _, _, serial = client_cert(ca, "client", tmp_path)
    crl = tmp_path / "clients.crl"
    write_crl(ca, crl, 1, [serial])
    agent = start("agent", "--secret", f"name=clients,ca={ca.cert},crl={crl}")
    _, line = agent.wait_log("Envoy refuses every client", 10, what="the CRL file's warning")
    assert " warning " in line and "clients" in line and "lacks cRLSign" in line, line
    secrets, _ = agent.fetch("clients")
    assert secrets and secrets[0]["name"] == "clients", secrets


def test_ca_serve_shows_its_list_in_debug_trust(start_ca_serve, free_port):
    admin_address = f"127.0.0.1:{free_port()}"
    ca = start_ca_serve(extra_args=["--admin", admin_address])
    admin = AdminClient(admin_address)
    trust = poll(lambda: (t := admin.json("/debug/trust")).get("revocation_lists") and t, 10,
                 what="ca serve's list in /debug/trust")
    (listed,) = trust["revocation_lists"]
    (root,) = trust["roots"]
    assert listed["issuer_root"] == root["serial"] and listed["entries"] == 0, listed
    assert "BEGIN X509 CRL" in admin.get("/ca/crl") and ca.alive()


# --------------------------------------------------------------------------- an operator CA with an intermediate


def operator_intermediate(directory):
    """The operator's CA files for an intermediate under an operator root, minted here: (ca-cert,
    ca-key, ca-chain, write_root_crl(number, serials=())). The root's list is written by a rename."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    import istio_ca

    root_key, root = istio_ca.make_root("operator root")
    key = istio_ca.new_key()
    now = dt.datetime.now(dt.timezone.utc)
    usage = x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False)
    intermediate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sds-agent e2e"),
                                 x509.NameAttribute(NameOID.COMMON_NAME, "operator intermediate")]))
        .issuer_name(root.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256()))
    cert, key_path, chain = directory / "ca-cert.pem", directory / "ca-key.pem", directory / "ca-chain.pem"
    cert.write_text(istio_ca.pem_cert(intermediate))
    key_path.write_bytes(istio_ca.pem_key(key))
    key_path.chmod(0o600)
    chain.write_text(istio_ca.pem_cert(root))

    def write_root_crl(path, number: int, serials=()):
        moment = dt.datetime.now(dt.timezone.utc)
        builder = (x509.CertificateRevocationListBuilder().issuer_name(root.subject).last_update(moment)
                   .next_update(moment + dt.timedelta(hours=1)).add_extension(x509.CRLNumber(number), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                                  critical=False))
        for serial in serials:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(moment).build())
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(builder.sign(root_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
        os.rename(tmp, path)

    return cert, key_path, chain, write_root_crl


def intermediate_agent(start_agent, free_port, tmp_path, root_crl: bool):
    cert, key, chain, write_root_crl = operator_intermediate(tmp_path)
    args = ["--ca-cert", cert, "--ca-key", key, "--ca-chain", chain]
    if root_crl:
        write_root_crl(tmp_path / "root.crl", 1)
        args += ["--ca-root-crl", tmp_path / "root.crl"]
    admin = f"127.0.0.1:{free_port()}"
    return start_agent(cert_ttl="600s", extra_args=[*args, "--admin", admin]), admin


@pytest.mark.parametrize("root_crl", [True, False], ids=["with-ca-root-crl", "without-ca-root-crl"])
def test_an_operator_intermediates_revocation_reaches_envoy(start_agent, start_envoy, free_port, tmp_path, root_crl):
    """ROOTCA carries the intermediate's list (leaf only) and refuses the revoked certificate; ALL
    does too with the operator root's list (--ca-root-crl), and without it still accepts good
    certificates (no outage), the gap logged and shown in /debug/trust."""
    agent, admin = intermediate_agent(start_agent, free_port, tmp_path, root_crl)
    backend = start_envoy("backend", agent.socket_path)
    spiffe_backend = start_envoy("backend-spiffe", agent.socket_path)
    gateway = start_envoy("gateway", agent.socket_path, BACKEND_PORT=backend.listen_port)
    backends, envoys = (backend, spiffe_backend), (gateway, backend, spiffe_backend)
    old_serial, old = hold(agent, tmp_path, "old")
    wait_envoys_hold(envoys, old_serial, timeout=30)
    assert get(gateway.listen_port) == 200
    for envoy in backends:
        assert mtls_get(envoy.listen_port, *old) == "ok", f"{envoy.name} refuses a good certificate"
    trust = AdminClient(admin).json("/debug/trust")
    assert len(trust["revocation_lists"]) == (2 if root_crl else 1), trust
    if root_crl:
        assert "revocation_gap" not in trust, trust
    else:
        assert "--ca-root-crl" in trust["revocation_gap"], trust
        assert any(" warning " in line and "ca-root-crl is not set" in line for line in agent.log_lines()), \
            agent.tail()

    t0 = time.monotonic()
    revoke(admin, "--serial", old_serial)
    enforcing = backends if root_crl else (backend,)
    refused = wait_refused(enforcing, old, t0)
    for envoy in enforcing:
        # Refused by certificate verification (the CRL), not by anything else.
        failures = stat(envoy, f"listener.127.0.0.1_{envoy.listen_port}.ssl.fail_verify_error")
        assert failures >= 1, f"{envoy.name}: ssl.fail_verify_error is {failures}"
    new_serial = wait_envoys_hold(envoys, lambda: AdminClient(admin).current_serial(), timeout=WINDOW)
    held_after = time.monotonic() - t0
    assert new_serial != old_serial
    _, new = hold(agent, tmp_path, "new")
    for envoy in backends:
        assert mtls_get(envoy.listen_port, *new) == "ok", f"{envoy.name} refuses the fresh certificate"
    if not root_crl:
        assert mtls_get(spiffe_backend.listen_port, *old) == "ok", "ALL refuses without a root-signed list"
    failures = [status for status in (get(gateway.listen_port) for _ in range(20)) if status != 200]
    assert not failures, f"requests through the gateway failed after the re-issue: {failures}"
    print(f"\n{'with' if root_crl else 'without'} --ca-root-crl: the revoked certificate was refused by "
          + ", ".join(f"{name} {t:.2f}s" for name, t in refused.items())
          + f" after ca revoke; every Envoy held the new serial after {held_after:.2f}s")
