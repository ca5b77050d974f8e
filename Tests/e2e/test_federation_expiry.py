"""Federated roots expire on the agent's timer: a root of a `--trust-bundle` file whose notAfter
passes leaves that trust domain's bundle (`/debug/trust`, the domain's validation context) while
the file stays unchanged; a file whose roots all expired is no longer served and is counted as
the file read then would be (`all_expired`).

The roots are minted here with a lifetime of a few seconds; the test waits for the agent's
change by polling the admin endpoint with a bound, never by a fixed sleep.
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from daemon_support import poll
from test_daemon import start  # noqa: F401 - `start` is a fixture

OTHER_DOMAIN = "other.example"
THIRD_DOMAIN = "third.example"


def root(domain: str, name: str, lifetime: datetime.timedelta) -> tuple[str, str]:
    """A self-signed CA for `domain` expiring `lifetime` from now: (PEM, serial as hex)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, domain),
                         x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"spiffe://{domain}")]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode(), format(cert.serial_number, "x")


def federated(agent, domain: str) -> dict:
    return next(entry for entry in agent.admin.json("/debug/trust")["federated"] if entry["trust_domain"] == domain)


def served_serials(agent, domain: str) -> set[str]:
    return {r["serial"].lower().lstrip("0") for r in federated(agent, domain)["roots"]}


def test_an_expired_federated_root_leaves_the_bundle_without_the_file_changing(start, tmp_path: Path):
    short_pem, short_serial = root(OTHER_DOMAIN, "short", datetime.timedelta(seconds=8))
    long_pem, long_serial = root(OTHER_DOMAIN, "long", datetime.timedelta(days=1))
    only_pem, _ = root(THIRD_DOMAIN, "only", datetime.timedelta(seconds=8))
    other_file, third_file = tmp_path / "other.pem", tmp_path / "third.pem"
    other_file.write_text(short_pem + long_pem)
    third_file.write_text(only_pem)
    written = (other_file.stat().st_mtime_ns, third_file.stat().st_mtime_ns)
    agent = start("agent", "--trust-bundle", f"spiffe://{OTHER_DOMAIN}={other_file}",
                  "--trust-bundle", f"spiffe://{THIRD_DOMAIN}={third_file}")
    started = time.monotonic()
    assert served_serials(agent, OTHER_DOMAIN) == {short_serial.lstrip("0"), long_serial.lstrip("0")}
    assert federated(agent, THIRD_DOMAIN)["served"] is True
    (before,), _ = agent.fetch(f"spiffe://{OTHER_DOMAIN}")
    assert short_pem.strip() in before["pem"]

    poll(lambda: served_serials(agent, OTHER_DOMAIN) == {long_serial.lstrip("0")}, 30,
         what="the expired root gone from /debug/trust")
    print(f"the expired root left the bundle {time.monotonic() - started:.1f}s after the agent served")
    (after,), _ = agent.fetch(f"spiffe://{OTHER_DOMAIN}")
    assert short_pem.strip() not in after["pem"] and long_pem.strip() in after["pem"]
    assert federated(agent, OTHER_DOMAIN)["last_error"] is None

    # The file whose one root expired: no longer served, counted as a file read now would be.
    poll(lambda: federated(agent, THIRD_DOMAIN)["served"] is False, 30, what="the all-expired domain unserved")
    third = federated(agent, THIRD_DOMAIN)
    assert third["roots"] == [] and third["last_error"].startswith("all_expired")
    metric = f'sds_agent_trust_bundle_errors_total{{trust_domain="{THIRD_DOMAIN}",reason="all_expired"}} 1'
    assert metric in agent.admin.get("/metrics")
    served, _ = agent.fetch("ALL")
    assert set(served[0]["trust_domains"]) == {"cluster.local", OTHER_DOMAIN}

    # Neither file changed; each expiry was logged once.
    assert (other_file.stat().st_mtime_ns, third_file.stat().st_mtime_ns) == written
    lines = agent.log_lines()
    assert sum("a federated root expired" in line for line in lines) == 1
    assert sum("cannot use the trust bundle file" in line and THIRD_DOMAIN in line for line in lines) == 1
    assert agent.alive()
