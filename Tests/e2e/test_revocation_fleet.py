"""Revocation in a `ca serve` fleet (issue #23, item 5): fetch-mode agents follow the CA's CRL.

gateway Envoy (plain HTTP in) --mTLS--> backend Envoy validating with ROOTCA, both getting their
secrets from one sds-agent in fetch mode (`--ca istio`) against `sds-agent ca serve`. The
certificate the agent serves is revoked on `ca serve` (`sds-agent ca revoke --admin`); the CRL
reaches the agent
  a. through the CRL distribution point `ca serve --crl-url` writes into every leaf and
     `--crl-listen` serves over HTTP (the agent refetches every `--crl-refresh`), or
  b. through a `--ca-crl` file the test rewrites with `GET /ca/crl`, as an operator's sync would;
within 5 s a TLS client presenting the revoked certificate and key is refused by the backend,
the agent has renewed (its own serial is listed), and traffic through the gateway flows.
A third test revokes in the overlap of a `ca serve` root rotation, when the agent trusts two
roots and must serve a CRL of each (it gets both from the distribution point, in PEM).

Run: SDS_AGENT_BIN=.build/debug/sds-agent .venv/bin/python -m pytest Tests/e2e/test_revocation_fleet.py -q -s
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from datetime import datetime, timezone

from conftest import agent_bin, norm_serial, wait_envoys_hold
from daemon_support import AdminClient
from test_fetch_mode import fetch_mode_args, leaf_of
from test_revocation import get, mtls_get, stat

WINDOW = 5.0


def served(agent) -> dict:
    secrets, _ = agent.fetch("default", "ROOTCA", extra=["--show-key"])
    return {s["name"]: s for s in secrets}


def start_fleet(start_ca_serve, start_agent, start_envoy, jwt_keys, tmp_path, ca_args=(), agent_args=(),
                max_ttl="1h"):
    """`ca serve`, a fetch-mode agent, a backend (ROOTCA) and a gateway; returns them once the
    Envoys hold the agent's certificate, with that certificate and key saved to files."""
    admin = f"127.0.0.1:{free_tcp_port()}"
    ca = start_ca_serve(extra_args=["--max-ttl", max_ttl, "--admin", admin, *ca_args])
    token = jwt_keys.write_token(tmp_path / "token")
    agent = start_agent("600s", extra_args=fetch_mode_args(ca, token, *agent_args))
    backend = start_envoy("backend", agent.socket_path)
    gateway = start_envoy("gateway", agent.socket_path, BACKEND_PORT=backend.listen_port)
    serial, old = save_served(agent, gateway, backend, tmp_path)
    return ca, admin, agent, backend, gateway, serial, old


def save_served(agent, gateway, backend, tmp_path):
    """The agent's certificate once the Envoys hold it, saved with its key and ROOTCA to files
    the test's TLS client presents and trusts."""
    by_name = served(agent)
    serial = norm_serial(by_name["default"]["serial"])
    wait_envoys_hold((gateway, backend), serial, timeout=30)
    assert get(gateway.listen_port) == 200
    (tmp_path / "old.pem").write_text(by_name["default"]["pem"])
    (tmp_path / "old.key").write_text(by_name["default"]["private_key"])
    (tmp_path / "root.pem").write_text(by_name["ROOTCA"]["pem"])
    old = (tmp_path / "old.pem", tmp_path / "old.key", tmp_path / "root.pem")
    assert mtls_get(backend.listen_port, *old) == "ok", "the backend refuses the certificate before revocation"
    return serial, old


def free_tcp_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def revoke_and_measure(admin, agent, backend, gateway, serial, old, on_revoked=None) -> dict:
    """Revokes `serial` on `ca serve`; returns the times (from the revoke) at which the backend
    refused the old certificate and the Envoys held a new one."""
    t0 = time.monotonic()
    res = subprocess.run([str(agent_bin()), "ca", "revoke", "--serial", serial, "--reason", "keyCompromise",
                          "--admin", admin], capture_output=True, text=True, timeout=30)
    times = {"ca revoke answered": time.monotonic() - t0}
    assert res.returncode == 0, f"ca revoke exited {res.returncode}\n{res.stdout}\n{res.stderr}"
    assert [norm_serial(s) for s in json.loads(res.stdout)["serials"]] == [serial], res.stdout
    if on_revoked is not None:
        on_revoked()
        times["CRL file written"] = time.monotonic() - t0
    accepted, through_gateway = 0, []
    while (outcome := mtls_get(backend.listen_port, *old)) == "ok":
        accepted += 1
        through_gateway.append(get(gateway.listen_port))
        assert time.monotonic() - t0 < WINDOW, f"the revoked certificate is still accepted after {WINDOW}s"
        time.sleep(0.05)
    times["backend refused the old certificate"] = time.monotonic() - t0
    failed_in_window = [status for status in through_gateway if status != 200]
    print(f"\nrefused with {outcome}; accepted {accepted} times in the window; requests through the gateway "
          f"meanwhile: {len(through_gateway)}, failed: {failed_in_window}")
    failures = stat(backend, f"listener.127.0.0.1_{backend.listen_port}.ssl.fail_verify_error")
    assert failures >= 1, f"ssl.fail_verify_error is {failures}: refused for another reason"
    new_serial = wait_envoys_hold((gateway, backend), lambda: served(agent)["default"]["serial"], timeout=WINDOW)
    times["Envoys held a new certificate"] = time.monotonic() - t0
    assert new_serial != serial
    failed = [status for status in (get(gateway.listen_port) for _ in range(20)) if status != 200]
    assert not failed, f"requests through the gateway failed after the renewal: {failed}"
    assert any("a followed CRL lists a certificate this agent serves" in line for line in agent.log_lines()), \
        "the agent did not say it renewed a revoked certificate"
    print("; ".join(f"{what} after {t:.2f}s" for what, t in times.items()))
    return times


def test_fetch_mode_follows_the_crl_distribution_point(start_ca_serve, start_agent, start_envoy, jwt_keys,
                                                       tmp_path):
    crl_port = free_tcp_port()
    url = f"http://127.0.0.1:{crl_port}/crl/ca.crl"
    ca, admin, agent, backend, gateway, serial, old = start_fleet(
        start_ca_serve, start_agent, start_envoy, jwt_keys, tmp_path,
        ca_args=["--crl-url", url, "--crl-listen", f"127.0.0.1:{crl_port}"], agent_args=["--crl-refresh", "1s"])

    # The distribution point is in the leaf, and serves the CRL in DER to any HTTP client.
    printed = subprocess.run(["openssl", "x509", "-in", str(old[0]), "-noout", "-ext", "crlDistributionPoints"],
                             capture_output=True, text=True)
    assert f"URI:{url}" in printed.stdout, printed.stdout + printed.stderr
    with urllib.request.urlopen(url, timeout=5) as answer:
        assert answer.headers["Content-Type"] == "application/pkix-crl"
        (tmp_path / "crl.der").write_bytes(answer.read())
    verify = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(tmp_path / "crl.der"), "-CAfile",
                             str(old[2]), "-verify", "-noout"], capture_output=True, text=True)
    assert verify.returncode == 0 and "verify OK" in verify.stderr + verify.stdout, verify.stderr

    times = revoke_and_measure(admin, agent, backend, gateway, serial, old)
    assert times["backend refused the old certificate"] < WINDOW
    assert any("followed a new CRL" in line and "distribution_point" in line for line in agent.log_lines())


def test_fetch_mode_follows_a_ca_crl_file(start_ca_serve, start_agent, start_envoy, jwt_keys, tmp_path):
    crl_file = tmp_path / "ca-crl.pem"
    crl_file.write_text("")  # not a CRL yet: refused and counted, nothing served
    agent_admin = f"127.0.0.1:{free_tcp_port()}"
    ca, admin, agent, backend, gateway, serial, old = start_fleet(
        start_ca_serve, start_agent, start_envoy, jwt_keys, tmp_path,
        agent_args=["--ca-crl", str(crl_file), "--admin", agent_admin])

    def sync_crl_file():
        staged = crl_file.with_suffix(".tmp")
        staged.write_text(AdminClient(admin).get("/ca/crl"))
        os.replace(staged, crl_file)

    sync_crl_file()
    times = revoke_and_measure(admin, agent, backend, gateway, serial, old, on_revoked=sync_crl_file)
    assert times["backend refused the old certificate"] < WINDOW
    assert any("followed a new CRL" in line and "file" in line for line in agent.log_lines())
    metrics = AdminClient(agent_admin).get("/metrics")
    assert any(line.startswith("sds_agent_crl_fetch_errors_total{") and 'source="file"' in line
               and 'reason="unparsable"' in line for line in metrics.splitlines()), metrics


def test_fetch_mode_follows_both_roots_crls_through_a_root_rotation(start_ca_serve, start_agent, start_envoy,
                                                                   jwt_keys, tmp_path):
    """In the overlap of a `ca serve` root rotation the agent trusts two roots, and Envoy wants a
    CRL of each once one is served: the agent's fetch gets both from the distribution point, so a
    revocation is still enforced."""
    crl_port = free_tcp_port()
    url = f"http://127.0.0.1:{crl_port}/crl"
    ca, admin, agent, backend, gateway, _, _ = start_fleet(
        start_ca_serve, start_agent, start_envoy, jwt_keys, tmp_path, max_ttl="30s",
        ca_args=["--crl-url", url, "--crl-listen", f"127.0.0.1:{crl_port}", "--root-overlap", "60s"],
        agent_args=["--crl-refresh", "1s"])
    t0 = time.monotonic()
    res = subprocess.run([str(agent_bin()), "ca", "rotate-root", "--admin", admin], capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 0, res.stderr
    # The agent learns the second root with its next certificate (at most half of --max-ttl).
    deadline = time.monotonic() + 30
    while served(agent)["ROOTCA"]["pem"].count("BEGIN CERTIFICATE") < 2:
        assert time.monotonic() < deadline, "the agent does not trust both roots 30 s after the prepare"
        time.sleep(0.2)
    both_roots = time.monotonic() - t0
    serial, old = save_served(agent, gateway, backend, tmp_path)
    # Refused for its revocation, not its expiry: it has more than the window left to live.
    left = leaf_of(old[0].read_text()).not_valid_after_utc - datetime.now(timezone.utc)
    assert left.total_seconds() > 2 * WINDOW, f"the certificate expires in {left}; the test would not tell"
    times = revoke_and_measure(admin, agent, backend, gateway, serial, old)
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "application/x-pem-file"}),
                                timeout=5) as answer:
        assert answer.read().decode().count("BEGIN X509 CRL") == 2, "ca serve does not answer both roots' CRLs"
    print(f"both roots trusted by the agent {both_roots:.1f}s after the prepare; refused "
          f"{times['backend refused the old certificate']:.2f}s after the revoke, in the overlap")
