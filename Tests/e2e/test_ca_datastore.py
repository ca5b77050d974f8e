"""`sds-agent ca serve --datastore`: replicas sharing one CA in a real PostgreSQL (Debian's, started
by the test in a temporary directory as `nobody`; one server for the module, one database per test).

- two replicas on one empty datastore: the first makes the root, the second loads it; leaves from
  either chain to the same root (`openssl verify`), each replica's <state-dir>/ca-cert.pem and
  GET /ca/roots give that root;
- a root imported with --ca-cert/--ca-key is stored sealed: a pg_dump holds no private key in clear
  (no "PRIVATE KEY", not the key's DER, PEM body or private scalar);
- a wrong --key-encryption-key, a key file not 0600, an unreachable --datastore and a datastore of a
  newer schema each stop the replica within 15 s with a message naming the setting;
- a password from --datastore-password-file logs in, and is never logged.

Run: SDS_AGENT_BIN=.build/debug/sds-agent .venv/bin/python -m pytest Tests/e2e/test_ca_datastore.py -q -s
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
from pathlib import Path

import pytest

import istio_ca
from conftest import agent_bin
from daemon_support import AdminClient
from postgres_server import PASSWORD_ROLE, PostgresServer
from test_ca_serve_rotation import request, verifies

START_LIMIT = 15.0


@pytest.fixture(scope="module")
def postgres():
    with PostgresServer() as server:
        yield server


@pytest.fixture
def database(postgres, request):
    return postgres.create_database("sds_" + request.node.name.replace("test_", "")[:40].lower())


def write_kek(path: Path, data: bytes | None = None, mode: int = 0o600) -> Path:
    path.write_bytes(data if data is not None else os.urandom(32))
    os.chmod(path, mode)
    return path


def admin_ready(address: str) -> AdminClient:
    """The replica's admin endpoint once it answers: it starts beside the gRPC listener, not before it."""
    from daemon_support import poll

    admin = AdminClient(address)

    def answers() -> bool:
        try:
            return admin.request("GET", "/healthz")[0] == 200
        except OSError:
            return False

    poll(answers, 10, interval=0.05, what=f"admin {address}")
    return admin


def replica_args(url: str, kek: Path, *extra) -> list[str]:
    return ["--datastore", url, "--key-encryption-key", str(kek), *extra]


def refused(tmp_path: Path, jwt_keys, free_port, *args, env=None) -> tuple[int, float, str]:
    """Runs `ca serve` expecting it to stop: (exit code, seconds, stderr)."""
    state = tmp_path / f"refused-{time.monotonic_ns()}"
    argv = [str(agent_bin()), "ca", "serve", "--listen", f"127.0.0.1:{free_port()}", "--state-dir", str(state),
            "--jwt-keys", str(jwt_keys.jwks_path), *[str(a) for a in args]]
    t0 = time.monotonic()
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    return res.returncode, time.monotonic() - t0, res.stderr


def test_two_replicas_on_one_datastore_sign_under_one_root(
        postgres, database, start_ca_serve, free_port, jwt_keys, tmp_path):
    kek = write_kek(tmp_path / "kek")
    url = postgres.url(database)
    admin_a, admin_b = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    a = start_ca_serve(extra_args=replica_args(url, kek, "--admin", admin_a, "--replica-name", "replica-a"))
    b = start_ca_serve(extra_args=replica_args(url, kek, "--admin", admin_b))
    print(f"two replicas serving after {time.monotonic() - t0:.2f}s")
    root = a.root_path.read_text()
    assert root.count("BEGIN CERTIFICATE") == 1
    assert b.root_path.read_text() == root, "the second replica does not serve the first one's root"
    assert admin_ready(admin_a).get("/ca/roots") == root and admin_ready(admin_b).get("/ca/roots") == root
    assert not (a.state_dir / "ca-key.pem").exists() and not (b.state_dir / "ca-key.pem").exists()

    for ca in (a, b):
        leaf, _, _ = request(ca, a.root_path, jwt_keys)
        assert verifies(leaf, a.root_path, tmp_path, "sslclient"), f"{ca.name}'s leaf does not chain to the root"

    rows = postgres.psql("SELECT role, created_by FROM sds_agent_ca_roots", database).split()
    assert rows == ["signing|replica-a"], rows
    versions = postgres.psql("SELECT version, applied_by FROM sds_agent_schema", database).split()
    assert versions == ["1|replica-a", "2|replica-a", "3|replica-a"], versions

    # A restarted replica loads the same root.
    a.stop()
    again = start_ca_serve(state_dir=a.state_dir, extra_args=replica_args(url, kek))
    assert again.root_path.read_text() == root


def test_a_dump_holds_no_private_key_in_clear(postgres, database, start_ca_serve, free_port, jwt_keys, tmp_path):
    from cryptography.hazmat.primitives import serialization

    key, cert = istio_ca.make_root("imported e2e root")
    cert_path, key_path = tmp_path / "root.pem", tmp_path / "root-key.pem"
    cert_path.write_text(istio_ca.pem_cert(cert))
    key_path.write_bytes(istio_ca.pem_key(key))
    os.chmod(key_path, 0o600)
    kek = write_kek(tmp_path / "kek")
    ca = start_ca_serve(extra_args=replica_args(
        postgres.url(database), kek, "--ca-cert", cert_path, "--ca-key", key_path))
    leaf, _, _ = request(ca, cert_path, jwt_keys)
    assert verifies(leaf, cert_path, tmp_path, "sslclient")
    assert postgres.psql("SELECT imported FROM sds_agent_ca_roots", database).strip() == "t"
    # A replica given other CA files on this datastore refuses to start rather than ignore them.
    other_key, other_cert = istio_ca.make_root("another root")
    other_cert_path, other_key_path = tmp_path / "other.pem", tmp_path / "other-key.pem"
    other_cert_path.write_text(istio_ca.pem_cert(other_cert))
    other_key_path.write_bytes(istio_ca.pem_key(other_key))
    os.chmod(other_key_path, 0o600)
    code, seconds, stderr = refused(tmp_path, jwt_keys, free_port, *replica_args(
        postgres.url(database), kek, "--ca-cert", other_cert_path, "--ca-key", other_key_path))
    assert code != 0 and seconds < START_LIMIT and "--ca-cert is not the CA of --datastore" in stderr, stderr
    # Without files, a replica loads the imported CA and does not rotate it.
    admin = f"127.0.0.1:{free_port()}"
    loader = start_ca_serve(extra_args=replica_args(postgres.url(database), kek, "--admin", admin))
    assert loader.root_path.read_text() == istio_ca.pem_cert(cert)
    status, body, _ = admin_ready(admin).request("POST", "/ca/rotate-root")
    assert status == 409, (status, body)

    dump = postgres.dump(database)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    pem_body = b"".join(istio_ca.pem_key(key).splitlines()[1:-1])
    assert b"PRIVATE KEY" not in dump
    for secret in (der, scalar):
        assert secret not in dump and secret.hex().encode() not in dump
        assert base64.b64encode(secret)[:40] not in dump
    assert pem_body[:40] not in dump
    assert b"sds_agent_ca_roots" in dump and istio_ca.pem_cert(cert).splitlines()[1].encode() in dump
    print(f"pg_dump: {len(dump)} bytes, no private key in clear")


def test_a_wrong_or_open_key_encryption_key_stops_the_replica_naming_it(
        postgres, database, start_ca_serve, free_port, jwt_keys, tmp_path):
    url = postgres.url(database)
    start_ca_serve(extra_args=replica_args(url, write_kek(tmp_path / "kek")))
    code, seconds, stderr = refused(tmp_path, jwt_keys, free_port, *replica_args(url, write_kek(tmp_path / "other")))
    print(f"wrong key-encryption key: exit {code} after {seconds:.2f}s")
    assert code != 0 and seconds < START_LIMIT and "--key-encryption-key" in stderr, (code, stderr)
    for name, data, mode in (("short", os.urandom(31), 0o600), ("open", os.urandom(32), 0o644)):
        code, seconds, stderr = refused(tmp_path, jwt_keys, free_port,
                                        *replica_args(url, write_kek(tmp_path / name, data, mode)))
        assert code != 0 and seconds < START_LIMIT and "--key-encryption-key" in stderr, (name, code, stderr)
    code, _, stderr = refused(tmp_path, jwt_keys, free_port, "--datastore", url)
    assert code != 0 and "key-encryption-key" in stderr, (code, stderr)


def test_an_unreachable_datastore_stops_the_replica_naming_it(free_port, jwt_keys, tmp_path):
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing?sslmode=disable"
    code, seconds, stderr = refused(tmp_path, jwt_keys, free_port, *replica_args(url, write_kek(tmp_path / "kek")))
    print(f"unreachable datastore: exit {code} after {seconds:.2f}s")
    assert code != 0 and seconds < START_LIMIT and "--datastore" in stderr and "cannot be reached" in stderr, stderr
    # The URL from the environment, under the name the issue gives it, is read the same way.
    code, _, stderr = refused(tmp_path, jwt_keys, free_port, "--key-encryption-key", write_kek(tmp_path / "kek2"),
                              env={**os.environ, "SDS_AGENT_CA_DATASTORE": url})
    assert code != 0 and "--datastore" in stderr and "cannot be reached" in stderr, stderr
    # Given twice, neither value is dropped silently; a password in it is not shown.
    code, _, stderr = refused(tmp_path, jwt_keys, free_port, *replica_args(url, tmp_path / "kek"),
                              "--datastore", url.replace("postgres@", "postgres:hunter2@"))
    assert code != 0 and "not repeatable" in stderr and "hunter2" not in stderr, stderr


def test_an_older_schema_is_migrated_and_a_newer_one_refused(
        postgres, database, start_ca_serve, free_port, jwt_keys, tmp_path):
    url, kek = postgres.url(database), write_kek(tmp_path / "kek")
    start_ca_serve(extra_args=replica_args(url, kek)).stop()
    # Back to version 1, as a datastore of the first release: the next start applies 2 and 3.
    postgres.psql("DROP TABLE sds_agent_issued, sds_agent_revocations, sds_agent_issuance_ledger; "
                  "DELETE FROM sds_agent_schema WHERE version >= 2", database)
    start_ca_serve(extra_args=replica_args(url, kek, "--replica-name", "upgrader")).stop()
    versions = postgres.psql("SELECT version, applied_by FROM sds_agent_schema ORDER BY version", database).split()
    assert versions[1:] == ["2|upgrader", "3|upgrader"] and not versions[0].endswith("upgrader"), versions
    postgres.psql("INSERT INTO sds_agent_schema (version, applied_by) VALUES (99, 'a newer sds-agent')", database)
    code, seconds, stderr = refused(tmp_path, jwt_keys, free_port, *replica_args(url, kek))
    assert code != 0 and seconds < START_LIMIT, (code, stderr)
    assert "--datastore" in stderr and "schema version 99" in stderr, stderr


def test_a_password_file_logs_in_and_is_never_logged(postgres, start_ca_serve, free_port, jwt_keys, tmp_path):
    database = postgres.create_database("sds_password", owner=PASSWORD_ROLE)
    url = postgres.url(database, user=PASSWORD_ROLE)
    password = tmp_path / "password"
    password.write_text("e2e-secret-pw\n")
    kek = write_kek(tmp_path / "kek")
    ca = start_ca_serve(extra_args=replica_args(url, kek, "--datastore-password-file", password,
                                                "--log-level", "debug"))
    assert ca.root_path.exists()
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    code, seconds, stderr = refused(tmp_path, jwt_keys, free_port,
                                    *replica_args(url, kek, "--datastore-password-file", wrong))
    assert code != 0 and seconds < START_LIMIT and "--datastore" in stderr, stderr
    ca.stop()
    logs = ca.stderr_path.read_text() + ca.stdout_path.read_text() + stderr
    assert "e2e-secret-pw" not in logs and "not-the-password" not in logs


# --------------------------------------------------------------------------- one rotation, followed by all

MAX_TTL, OVERLAP = "5s", "5s"
FOLLOW_LIMIT = 2.0


def pems(text: str) -> list[str]:
    return ["-----BEGIN CERTIFICATE-----" + b for b in text.split("-----BEGIN CERTIFICATE-----")[1:]]


def two_replicas(postgres, database, start_ca_serve, free_port, tmp_path):
    kek = write_kek(tmp_path / "kek")
    replicas = []
    for name in ("a", "b"):
        admin = f"127.0.0.1:{free_port()}"
        ca = start_ca_serve(extra_args=replica_args(
            postgres.url(database), kek, "--admin", admin, "--replica-name", f"replica-{name}",
            "--max-ttl", MAX_TTL, "--root-overlap", OVERLAP))
        replicas.append((ca, admin_ready(admin), admin))
    return replicas


def start_rotation(admin_address: str) -> dict:
    from test_daemon import run_cli

    res = run_cli("ca", "rotate-root", "--admin", admin_address)
    assert res.returncode == 0, res.stderr
    import json

    return json.loads(res.stdout)["rotation"]


def iso(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_a_rotation_started_on_one_replica_is_followed_by_the_other(
        postgres, database, start_ca_serve, free_port, jwt_keys, tmp_path):
    from daemon_support import poll

    (a, admin_a, address_a), (b, admin_b, _) = two_replicas(postgres, database, start_ca_serve, free_port, tmp_path)
    old_root = tmp_path / "old-root.pem"
    old_root.write_text(a.root_path.read_text())
    t0 = time.time()
    rotation = start_rotation(address_a)
    poll(lambda: len(pems(admin_b.get("/ca/roots"))) == 2, FOLLOW_LIMIT, interval=0.05,
         what="both roots on replica b")
    followed = time.time() - t0
    assert admin_b.json("/debug/trust")["phase"] == "prepared"
    poll(lambda: len(pems(b.root_path.read_text())) == 2, FOLLOW_LIMIT, what="both roots in b's ca-cert.pem")
    print(f"rotation started on a: both roots on b after {followed:.3f}s")
    assert followed < FOLLOW_LIMIT
    new_root_pem = next(p for p in pems(admin_b.get("/ca/roots")) if p.strip() not in old_root.read_text())
    new_root = tmp_path / "new-root.pem"
    new_root.write_text(new_root_pem)
    leaf, _, _ = request(b, b.root_path, jwt_keys)
    assert verifies(leaf, old_root, tmp_path, "sslclient"), "b signs with the new root before the switch"

    switch_at = iso(rotation["switch_at"])
    poll(lambda: admin_b.json("/debug/trust")["phase"] == "switched", switch_at - time.time() + FOLLOW_LIMIT + 1,
         interval=0.05, what="b switched")
    print(f"b switched {time.time() - switch_at:+.3f}s after switch_at")
    for ca in (a, b):
        leaf, _, _ = request(ca, b.root_path, jwt_keys)
        assert verifies(leaf, new_root, tmp_path, "sslclient"), f"{ca.name} does not sign with the new root"
    assert postgres.psql("SELECT phase FROM sds_agent_root_rotation", database).strip() == "switched"

    poll(lambda: len(pems(admin_b.get("/ca/roots"))) == 1 and len(pems(admin_a.get("/ca/roots"))) == 1,
         float(MAX_TTL[:-1]) + 10, interval=0.1, what="the old root retired on both")
    assert pems(admin_b.get("/ca/roots"))[0].strip() == new_root_pem.strip()
    assert postgres.psql("SELECT count(*) FROM sds_agent_root_rotation", database).strip() == "0"
    assert postgres.psql("SELECT role FROM sds_agent_ca_roots", database).split() == ["signing"]


def test_a_killed_replica_leaves_the_time_driven_steps_to_the_other(
        postgres, database, start_ca_serve, free_port, jwt_keys, tmp_path):
    from daemon_support import poll

    (a, _, address_a), (b, admin_b, _) = two_replicas(postgres, database, start_ca_serve, free_port, tmp_path)
    rotation = start_rotation(address_a)
    poll(lambda: admin_b.json("/debug/trust")["phase"] == "prepared", FOLLOW_LIMIT, interval=0.05,
         what="b following the rotation")
    a.signal(9)
    a.stopped_on_purpose = True
    a.wait_exit(10)
    switch_at = iso(rotation["switch_at"])
    poll(lambda: postgres.psql("SELECT phase, updated_by FROM sds_agent_root_rotation", database).strip()
         == "switched|replica-b", switch_at - time.time() + FOLLOW_LIMIT + 1, interval=0.05,
         what="replica b switching alone")
    print(f"a killed; b took the switch {time.time() - switch_at:+.3f}s after switch_at")
    poll(lambda: postgres.psql("SELECT count(*) FROM sds_agent_root_rotation", database).strip() == "0",
         float(MAX_TTL[:-1]) + 10, interval=0.1, what="replica b retiring alone")
    (only,) = pems(admin_b.get("/ca/roots"))
    new_root = tmp_path / "new-root.pem"
    new_root.write_text(only)
    assert only.split()[2] == postgres.psql(
        "SELECT certificate_pem FROM sds_agent_ca_roots WHERE role = 'signing'", database).split()[2]
    leaf, _, _ = request(b, new_root, jwt_keys)
    assert verifies(leaf, new_root, tmp_path, "sslclient")


def test_replicas_sign_on_while_the_datastore_is_down_and_follow_it_again(
        postgres, database, start_ca_serve, free_port, jwt_keys, tmp_path):
    from daemon_support import poll

    (a, _, address_a), (b, admin_b, _) = two_replicas(postgres, database, start_ca_serve, free_port, tmp_path)
    root = tmp_path / "root.pem"
    root.write_text(a.root_path.read_text())
    postgres.stop()
    try:
        t0 = time.monotonic()
        for ca in (a, b):
            leaf, _, _ = request(ca, root, jwt_keys)
            assert verifies(leaf, root, tmp_path, "sslclient"), f"{ca.name} stopped signing without its datastore"
        print(f"datastore down: both replicas signed in {time.monotonic() - t0:.3f}s")
        # Within a second, unless b's re-read began as PostgreSQL was stopping: its connect then
        # waits out the connect timeout (10 s by default) before it fails.
        b.wait_log(lambda line: "datastore: cannot be read" in line, 15, what="b noticing the datastore is down")
    finally:
        postgres.start()
    b.wait_log(lambda line: "datastore: reachable again" in line, 10, what="b reading the datastore again")
    t0 = time.time()
    start_rotation(address_a)
    poll(lambda: len(pems(admin_b.get("/ca/roots"))) == 2, FOLLOW_LIMIT, interval=0.05,
         what="both roots on b after the datastore came back")
    print(f"datastore back: a rotation on a reached b after {time.time() - t0:.3f}s")


def crl_serials(pem_text: str) -> set[int]:
    from cryptography import x509

    blocks = ["-----BEGIN X509 CRL-----" + b for b in pem_text.split("-----BEGIN X509 CRL-----")[1:]]
    return {entry.serial_number for block in blocks for entry in x509.load_pem_x509_crl(block.encode())}


def test_a_revocation_on_one_replica_reaches_the_others_crl(
        postgres, database, start_ca_serve, free_port, jwt_keys, tmp_path):
    from cryptography import x509

    from daemon_support import poll
    from test_daemon import run_cli

    (a, admin_a, address_a), (b, admin_b, _) = two_replicas(postgres, database, start_ca_serve, free_port, tmp_path)
    leaf, _, _ = request(b, b.root_path, jwt_keys)
    serial = x509.load_pem_x509_certificate(leaf.encode()).serial_number
    hex_serial = format(serial, "x")
    poll(lambda: postgres.psql(f"SELECT replica FROM sds_agent_issued WHERE ltrim(serial, '0') = '{hex_serial}'",
                               database).strip() == "replica-b", 5, interval=0.05, what="b's leaf uploaded")
    assert serial not in crl_serials(admin_b.get("/ca/crl"))
    t0 = time.monotonic()
    res = run_cli("ca", "revoke", "--serial", hex_serial, "--reason", "keyCompromise", "--admin", address_a)
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert serial in crl_serials(admin_a.get("/ca/crl")), "a's own CRL lacks the revocation"
    poll(lambda: serial in crl_serials(admin_b.get("/ca/crl")), FOLLOW_LIMIT, interval=0.05,
         what="the revocation in b's CRL")
    print(f"revoked on a: in b's CRL after {time.monotonic() - t0:.3f}s")
    again = run_cli("ca", "revoke", "--serial", hex_serial, "--admin", address_a)
    assert "already" in (again.stdout + again.stderr).lower(), (again.returncode, again.stdout, again.stderr)
