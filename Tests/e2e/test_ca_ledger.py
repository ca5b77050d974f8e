"""The issuance ledger of `ca serve --datastore` (issue #25, item 3), on a real PostgreSQL: every
certificate a replica signs is a row written before its answer leaves, the rows hash-chained, and
`sds-agent ca ledger` lists them and verifies the chain.

- two replicas sign; `ca ledger --json` lists each leaf once, with its replica, identity and
  validity; `--identity` filters; `--verify` passes on the real run;
- a row changed with psql, and then a row deleted, make `--verify` exit 1 naming the row;
- with PostgreSQL stopped a replica still signs; the rows it held are written once it is back,
  and the chain verifies.

Run: SDS_AGENT_BIN=.build/debug/sds-agent .venv/bin/python -m pytest Tests/e2e/test_ca_ledger.py -q -s
"""

from __future__ import annotations

import json
import subprocess
import time

from conftest import SPIFFE_ID, agent_bin, norm_serial
from cryptography import x509
from daemon_support import poll
from test_ca_datastore import database, postgres, replica_args, write_kek  # noqa: F401 (fixtures)
from test_ca_serve_rotation import request


def ledger(url: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(agent_bin()), "ca", "ledger", "--datastore", url, *args], capture_output=True,
                          text=True, timeout=60)


def rows(url: str, *args) -> list[dict]:
    res = ledger(url, "--json", *args)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["rows"]


def serial_of(pem: str) -> str:
    return norm_serial(format(x509.load_pem_x509_certificate(pem.encode()).serial_number, "x"))


def test_every_leaf_is_a_row_and_a_changed_or_deleted_row_is_named(
        postgres, database, start_ca_serve, jwt_keys, tmp_path):
    url, kek = postgres.url(database), write_kek(tmp_path / "kek")
    a = start_ca_serve(extra_args=replica_args(url, kek, "--replica-name", "replica-a"))
    b = start_ca_serve(extra_args=replica_args(url, kek, "--replica-name", "replica-b"))
    signed = {}
    for ca, replica in ((a, "replica-a"), (b, "replica-b"), (a, "replica-a")):
        leaf, _, _ = request(ca, a.root_path, jwt_keys)
        signed[serial_of(leaf)] = replica
    listed = rows(url)
    assert {norm_serial(r["serial"]): r["replica"] for r in listed} == signed, listed
    assert [r["sequence"] for r in listed] == [1, 2, 3]
    assert all(r["spiffe_id"] == SPIFFE_ID and r["caller"] == SPIFFE_ID and r["kind"] == "issuance" for r in listed)
    assert all(r["not_before"] < r["not_after"] for r in listed)
    assert rows(url, "--identity", SPIFFE_ID) == listed
    assert rows(url, "--identity", "spiffe://cluster.local/ns/other/sa/none") == []
    text = ledger(url).stdout.splitlines()
    assert len(text) == 3 and all("replica=" in line and "serial=" in line for line in text), text

    verified = ledger(url, "--verify")
    assert verified.returncode == 0 and verified.stdout.startswith("ledger verified: 3 rows"), verified
    print(f"\n{verified.stdout.strip()}")

    postgres.psql("UPDATE sds_agent_issuance_ledger SET spiffe_id = 'spiffe://cluster.local/ns/x/sa/forged' "
                  "WHERE sequence = 2", database)
    changed = ledger(url, "--verify")
    assert changed.returncode == 1 and "ledger row 2 was changed" in changed.stdout, changed
    print(changed.stdout.strip())
    postgres.psql("UPDATE sds_agent_issuance_ledger SET spiffe_id = %s WHERE sequence = 2" % f"'{SPIFFE_ID}'",
                  database)
    assert ledger(url, "--verify").returncode == 0, "restoring the row makes the chain whole again"
    postgres.psql("DELETE FROM sds_agent_issuance_ledger WHERE sequence = 2", database)
    deleted = ledger(url, "--verify", "--json")
    assert deleted.returncode == 1, deleted
    verdict = json.loads(deleted.stdout)
    assert verdict["verified"] is False and verdict["sequence"] == 2 and verdict["reason"] == "missing", verdict


def test_rows_signed_while_postgresql_is_down_are_written_when_it_is_back(
        postgres, database, start_ca_serve, jwt_keys, tmp_path):
    url, kek = postgres.url(database), write_kek(tmp_path / "kek")
    ca = start_ca_serve(extra_args=replica_args(url, kek, "--replica-name", "replica-a"))
    request(ca, ca.root_path, jwt_keys)
    postgres.stop()
    try:
        held = {serial_of(request(ca, ca.root_path, jwt_keys)[0]) for _ in range(2)}
    finally:
        postgres.start()
    t0 = time.monotonic()
    def all_written():
        listed = rows(url)
        return listed if len(listed) == 3 else None

    listed = poll(all_written, 15, interval=0.2, what="the held rows written once PostgreSQL is back")
    print(f"\nrows held while PostgreSQL was down written {time.monotonic() - t0:.2f}s after it came back")
    assert held <= {norm_serial(r["serial"]) for r in listed}
    assert ledger(url, "--verify").returncode == 0
