"""The SPIFFE Workload API on the agent's socket, against clients nobody here wrote: py-spiffe
(`spiffe`) and grpcio with py-spiffe's generated stubs.

1. test_x509_source_follows_a_rotation: py-spiffe's X509Source on the SDS socket gets the SVID
   SDS serves as `default` (same serial, a key that matches it) and the ROOTCA roots as its
   bundle; a forced rotation (admin POST /rotate) arrives on its open stream with the serial SDS
   serves at that moment. The banner prints the SPIFFE_ENDPOINT_SOCKET line.
   test_a_root_rotation_reaches_both_streams: `ca rotate-root` publishes the prepared root; an
   open X509Source and an open FetchX509Bundles stream get both roots, as SDS's ROOTCA has them.
   test_a_federation_change_reaches_the_svid_stream: a `--trust-bundle` domain is in
   `federated_bundles`, and a new root in its file reaches the open X509Source.
   test_many_streams_get_a_rotation: 1,000 FetchX509SVID streams on one connection (grpcio's
   asyncio client) each get the SVID, then the rotated one; the times are printed.
2. test_two_processes_keep_mtls_through_a_rotation: a server process and this process, each with
   its own X509Source and plain `ssl` contexts made from it, do mTLS with SVIDs from the agent,
   checking the peer's SPIFFE ID; after a rotation both present the new certificate and the
   handshake still succeeds. (spiffe-tls 0.4.0's `listen` cannot follow a rotation with
   pyOpenSSL 26: it reloads the certificate into a context that already made a connection,
   which pyOpenSSL refuses, "Context has already been used to create a Connection".)
3. test_protocol_rules: grpcio without the `workload.spiffe.io` header gets INVALID_ARGUMENT
   (X.509 and JWT methods), FetchX509Bundles every trust domain's roots.
   test_workload_api_off: `--workload-api=false` answers UNIMPLEMENTED and prints no
   SPIFFE_ENDPOINT_SOCKET line.
   test_own_socket: `--workload-api-socket` with `--workload-api-socket-mode 0640` and
   `--workload-api-socket-group` (4242 as root) has that mode and group,
   serves X509Source and refuses SDS (UNIMPLEMENTED); the banner names it.
4. test_jwt_svid_fetch_validate_and_bundle: py-spiffe's WorkloadApiClient fetches a JWT-SVID for
   an audience, validates it with the agent (ValidateJWTSVID) and on its own with the JWT bundle
   from FetchJWTBundles (PyJWT underneath); the wrong audience, a token of another key and
   another identity's JWT-SVID are refused with INVALID_ARGUMENT / PERMISSION_DENIED, each counted
   in /metrics by method and outcome.
   test_jwt_key_rotates_with_the_root: across `ca rotate-root --overlap 2s` (--jwt-svid-ttl 10s)
   an open FetchJWTBundles stream is pushed the prepared key (both kids) while the old key still
   signs; after the switch new tokens carry the new kid and a token fetched before the rotation
   still validates; one token lifetime after the switch the bundle holds only the new key and the
   old token is refused.
   test_federated_jwt_bundle: a --trust-bundle SPIFFE bundle's jwt-svid key is in py-spiffe's JWT
   bundles under its domain and verifies that domain's tokens; a federated domain without JWT
   keys has no JWT bundle and its tokens are refused.
5. test_node_agent_callers_get_only_their_own_svid: `--caller-identity peer` with rules for uids
   1001 and 1002: each uid (a child that drops to it before connecting) gets exactly its own
   SPIFFE ID and never the other's; uid 1003, mapped nowhere, gets PERMISSION_DENIED. Needs root.

Run: SDS_AGENT_BIN=.build/debug/sds-agent .venv/bin/python -m pytest Tests/e2e/test_workload_api.py -q -s
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import SPIFFE_ID, _start_agent
from daemon_support import AdminClient, fetch_secrets, inline_pem, leaf_of, secrets_of, wait_admin

HEADER = (("workload.spiffe.io", "true"),)
BANNER = "sds-agent: serving the SPIFFE Workload API: SPIFFE_ENDPOINT_SOCKET=unix://"
UPDATE_TIMEOUT = 15.0  # a pushed update arrives well within this
ID_A = "spiffe://cluster.local/ns/web/sa/frontend"
ID_B = "spiffe://cluster.local/ns/api/sa/backend"
UID_A, UID_B, UID_X = 1001, 1002, 1003


@pytest.fixture
def wapi_agent(processes, tmp_path_factory, free_port):
    """Factory: wapi_agent(extra=()) -> (Agent, AdminClient) with a 10-minute TTL."""

    def start(extra=(), base: Path | None = None, name: str = "sds-agent"):
        admin = f"127.0.0.1:{free_port()}"
        agent = _start_agent(processes, base or tmp_path_factory.mktemp("wapi"), "10m",
                             ["--admin", admin, *map(str, extra)], name=name)
        client = AdminClient(admin)
        wait_admin(client)
        return agent, client

    return start


def sds_default(socket_path: Path):
    """The `default` leaf and the ROOTCA roots (PEM) SDS serves right now."""
    resp = fetch_secrets(socket_path, ["default", "ROOTCA"])
    return leaf_of(resp), inline_pem(secrets_of(resp)["ROOTCA"].validation_context.trusted_ca)


def der_roots(pem: str) -> set[bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    return {c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(pem.encode())}


def workload_stub(socket_path: Path):
    import grpc
    from spiffe._proto import workload_pb2_grpc

    channel = grpc.insecure_channel(f"unix:{socket_path}")
    return channel, workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)


def first_svid_or_status(socket_path: Path, metadata=HEADER, timeout: float = 10.0) -> dict:
    """The first FetchX509SVID message (its SPIFFE IDs and leaf serial), or the status that ended
    the call."""
    import grpc
    from cryptography import x509
    from spiffe._proto import workload_pb2

    channel, stub = workload_stub(socket_path)
    out: dict = {"code": None, "details": None, "ids": [], "serial": None}
    call = stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), metadata=metadata or None, timeout=timeout)
    try:
        resp = next(call)
        out["ids"] = [s.spiffe_id for s in resp.svids]
        if resp.svids:
            der = resp.svids[0].x509_svid
            # The leaf is the first DER certificate: its length is in its outer SEQUENCE header.
            out["serial"] = format(x509.load_der_x509_certificate(der[:der_length(der)]).serial_number, "x")
    except grpc.RpcError as e:
        out["code"], out["details"] = e.code().name, e.details()
    finally:
        call.cancel()
        channel.close()
    return out


def der_length(der: bytes) -> int:
    """The length of the first DER element of `der`, header included."""
    first = der[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    return 2 + count + int.from_bytes(der[2:2 + count], "big")


def test_x509_source_follows_a_rotation(wapi_agent):
    from cryptography.hazmat.primitives.serialization import Encoding
    from spiffe import TrustDomain, X509Source

    agent, admin = wapi_agent()
    agent.wait_for_line(lambda line: line == BANNER + str(agent.socket_path), 10)

    t0 = time.monotonic()
    source = X509Source(socket_path=f"unix://{agent.socket_path}", timeout_in_seconds=UPDATE_TIMEOUT)
    print(f"X509Source: first SVID after {time.monotonic() - t0:.3f}s")
    try:
        updated = threading.Event()
        source.subscribe_for_updates(updated.set)
        svid = source.get_x509_context().default_svid
        leaf, roots = sds_default(agent.socket_path)
        assert str(svid.spiffe_id) == SPIFFE_ID
        assert svid.leaf.serial_number == leaf.serial_number, "the Workload API and SDS serve different certificates"
        assert svid.private_key.public_key().public_bytes(Encoding.DER, _spki()) == \
            leaf.public_key().public_bytes(Encoding.DER, _spki()), "the key does not match the leaf"
        bundle = source.get_bundle_for_trust_domain(TrustDomain("cluster.local"))
        assert bundle is not None
        assert {c.public_bytes(Encoding.DER) for c in bundle.x509_authorities} == der_roots(roots)

        t1 = time.monotonic()
        status, body = admin.rotate()
        assert status == 200, body
        assert updated.wait(UPDATE_TIMEOUT), "the rotation did not arrive on the open Workload API stream"
        print(f"rotation reached the X509Source after {time.monotonic() - t1:.3f}s")
        rotated = source.get_x509_context().default_svid
        now_leaf, _ = sds_default(agent.socket_path)
        assert rotated.leaf.serial_number != svid.leaf.serial_number
        assert rotated.leaf.serial_number == now_leaf.serial_number, "after the rotation SDS serves another serial"
    finally:
        source.close()


def _spki():
    from cryptography.hazmat.primitives.serialization import PublicFormat

    return PublicFormat.SubjectPublicKeyInfo


def test_a_root_rotation_reaches_both_streams(wapi_agent):
    from cryptography.hazmat.primitives.serialization import Encoding
    from spiffe import TrustDomain, X509Source
    from spiffe._proto import workload_pb2

    from conftest import agent_bin

    agent, admin = wapi_agent()
    source = X509Source(socket_path=f"unix://{agent.socket_path}", timeout_in_seconds=UPDATE_TIMEOUT)
    channel, stub = workload_stub(agent.socket_path)
    bundles = stub.FetchX509Bundles(workload_pb2.X509BundlesRequest(), metadata=HEADER, timeout=60)
    try:
        first = next(bundles)
        updated = threading.Event()
        source.subscribe_for_updates(updated.set)
        res = subprocess.run([str(agent_bin()), "ca", "rotate-root", "--admin", admin.address, "--overlap", "1h"],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr
        assert updated.wait(UPDATE_TIMEOUT), "the prepared root did not reach the open X509Source"
        second = next(bundles)
        _, roots = sds_default(agent.socket_path)
        assert len(der_roots(roots)) == 2
        authorities = source.get_bundle_for_trust_domain(TrustDomain("cluster.local")).x509_authorities
        assert {c.public_bytes(Encoding.DER) for c in authorities} == der_roots(roots)
        assert len(first.bundles["spiffe://cluster.local"]) < len(second.bundles["spiffe://cluster.local"])
    finally:
        bundles.cancel()
        channel.close()
        source.close()


def make_root(directory: Path, name: str) -> bytes:
    """A throwaway root of another trust domain, as PEM (its key is discarded)."""
    cert = directory / f"{name}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", directory / f"{name}.key", "-out", cert, "-days", "2", "-subj", f"/O=example.org/CN={name}",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"],
                   check=True, capture_output=True)
    (directory / f"{name}.key").unlink()
    return cert.read_bytes()


def test_a_federation_change_reaches_the_svid_stream(wapi_agent, tmp_path):
    from cryptography.hazmat.primitives.serialization import Encoding
    from spiffe import TrustDomain, X509Source

    first, second = make_root(tmp_path, "first"), make_root(tmp_path, "second")
    bundle = tmp_path / "example.org.pem"
    bundle.write_bytes(first)
    agent, _ = wapi_agent(["--trust-bundle", f"spiffe://example.org={bundle}"])
    source = X509Source(socket_path=f"unix://{agent.socket_path}", timeout_in_seconds=UPDATE_TIMEOUT)
    try:
        def federated() -> set[bytes]:
            found = source.get_bundle_for_trust_domain(TrustDomain("example.org"))
            return {c.public_bytes(Encoding.DER) for c in found.x509_authorities} if found else set()

        assert federated() == der_roots(first.decode())
        updated = threading.Event()
        source.subscribe_for_updates(updated.set)
        staged = tmp_path / "staged.pem"
        staged.write_bytes(second)
        os.replace(staged, bundle)
        assert updated.wait(UPDATE_TIMEOUT), "the federated bundle's change did not reach the open X509Source"
        assert federated() == der_roots(second.decode())
    finally:
        source.close()


STREAMS = 1000


def test_many_streams_get_a_rotation(wapi_agent):
    """STREAMS FetchX509SVID streams on one connection each get their SVID, then the rotation;
    the times are printed."""
    import asyncio

    import grpc
    from cryptography import x509
    from spiffe._proto import workload_pb2, workload_pb2_grpc

    agent, admin = wapi_agent()

    def serial(message) -> int:
        der = message.svids[0].x509_svid
        return x509.load_der_x509_certificate(der[:der_length(der)]).serial_number

    async def run():
        async with grpc.aio.insecure_channel(f"unix:{agent.socket_path}") as channel:
            stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)
            t0 = time.monotonic()
            calls = [stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), metadata=HEADER, timeout=120)
                     for _ in range(STREAMS)]
            first = await asyncio.gather(*(call.read() for call in calls))
            opened = time.monotonic() - t0
            t1 = time.monotonic()
            status, body = await asyncio.get_running_loop().run_in_executor(None, admin.rotate)
            assert status == 200, body
            second = await asyncio.gather(*(call.read() for call in calls))
            pushed = time.monotonic() - t1
            for call in calls:
                call.cancel()
            return first, second, opened, pushed

    first, second, opened, pushed = asyncio.run(run())
    leaf, _ = sds_default(agent.socket_path)
    assert {serial(m) for m in first} != {leaf.serial_number}
    assert len({serial(m) for m in first}) == 1
    assert {serial(m) for m in second} == {leaf.serial_number}
    print(f"{STREAMS} FetchX509SVID streams: all first SVIDs after {opened:.2f}s ({STREAMS / opened:.0f} streams/s); "
          f"the rotation on every stream {pushed:.2f}s after the POST")


# --------------------------------------------------------------------------- mTLS between processes


def tls_context(source, server: bool, directory: Path):
    """A stdlib TLS context from the source's SVID and bundle as they are now: mTLS, the peer's
    chain checked against the trust domain's roots (its SPIFFE ID is checked by the caller)."""
    import ssl

    from cryptography.hazmat.primitives.serialization import Encoding
    from spiffe import TrustDomain

    x509 = source.get_x509_context()
    chain, key, roots = directory / "chain.pem", directory / "key.pem", directory / "roots.pem"
    x509.default_svid.save(chain, key, Encoding.PEM)
    source.get_bundle_for_trust_domain(TrustDomain("cluster.local")).save(roots, Encoding.PEM)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(chain, key)
    context.load_verify_locations(roots)
    return context


def peer_leaf(tls_socket):
    from cryptography import x509

    return x509.load_der_x509_certificate(tls_socket.getpeercert(binary_form=True))


def _serve_main(socket_path: str) -> None:
    """An mTLS server whose SVID comes from its own X509Source: prints `listening PORT SERIAL`,
    then `updated SERIAL` on every update of its source, and answers each connection with its
    peer's SPIFFE IDs and leaf serial. Each connection gets a context made from the source as it
    is then (the Python ssl module loads certificates only from files)."""
    import socket

    from spiffe import X509Source

    directory = Path(tempfile.mkdtemp(prefix="wapi-tls-"))
    source = X509Source(socket_path=f"unix://{socket_path}", timeout_in_seconds=UPDATE_TIMEOUT)

    def serial() -> str:
        return f"{source.get_x509_context().default_svid.leaf.serial_number:x}"

    source.subscribe_for_updates(lambda: print(f"updated {serial()}", flush=True))
    listener = socket.create_server(("127.0.0.1", 0))
    print(f"listening {listener.getsockname()[1]} {serial()}", flush=True)
    while True:
        raw, _ = listener.accept()
        try:
            with tls_context(source, True, directory).wrap_socket(raw, server_side=True) as conn:
                leaf = peer_leaf(conn)
                conn.recv(16)
                conn.sendall(json.dumps({"peer": _names(leaf), "serial": f"{leaf.serial_number:x}"}).encode() + b"\n")
        except OSError as e:  # a failed handshake is the client's to report
            print(f"connection failed: {e!r}", flush=True)


def _names(cert) -> list[str]:
    from cryptography import x509

    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.UniformResourceIdentifier)


def test_two_processes_keep_mtls_through_a_rotation(wapi_agent, processes, tmp_path):
    import socket

    from conftest import ManagedProcess
    from spiffe import X509Source

    agent, admin = wapi_agent()
    server = processes.add(ManagedProcess(
        "tls-server", [sys.executable, __file__, "--serve", str(agent.socket_path)],
        agent.socket_path.parent, capture_stdout=True))
    index = server.wait_for_line(lambda l: l.startswith("listening "), UPDATE_TIMEOUT)
    _, port, server_serial = server.stdout_lines()[index].split()
    source = X509Source(socket_path=f"unix://{agent.socket_path}", timeout_in_seconds=UPDATE_TIMEOUT)
    try:
        updated = threading.Event()
        source.subscribe_for_updates(updated.set)

        def exchange():
            with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as raw, \
                    tls_context(source, False, tmp_path).wrap_socket(raw) as conn:
                server_leaf = peer_leaf(conn)
                assert _names(server_leaf) == [SPIFFE_ID]
                conn.sendall(b"hello\n")
                answer = json.loads(conn.recv(4096).decode())
                return f"{server_leaf.serial_number:x}", answer

        def serial() -> str:
            return f"{source.get_x509_context().default_svid.leaf.serial_number:x}"

        before = serial()
        seen_server, answer = exchange()
        assert seen_server == server_serial
        assert answer == {"peer": [SPIFFE_ID], "serial": before}

        mark = len(server.stdout_lines())
        status, body = admin.rotate()
        assert status == 200, body
        assert updated.wait(UPDATE_TIMEOUT), "the client's source did not get the rotation"
        after = serial()
        assert after != before
        server.wait_for_line(lambda l: l == f"updated {after}", UPDATE_TIMEOUT, start=mark)
        seen_server, answer = exchange()
        assert seen_server == after, "the server still presents the certificate from before the rotation"
        assert answer == {"peer": [SPIFFE_ID], "serial": after}
        print(f"mTLS between two processes with {before} and then {after}")
    finally:
        source.close()


# --------------------------------------------------------------------------- protocol rules


def test_protocol_rules(wapi_agent):
    import grpc
    from spiffe._proto import workload_pb2

    agent, _ = wapi_agent()
    missing = first_svid_or_status(agent.socket_path, metadata=())
    assert missing["code"] == "INVALID_ARGUMENT", missing
    assert "workload.spiffe.io" in missing["details"]
    wrong = first_svid_or_status(agent.socket_path, metadata=(("workload.spiffe.io", "false"),))
    assert wrong["code"] == "INVALID_ARGUMENT", wrong

    channel, stub = workload_stub(agent.socket_path)
    try:
        with pytest.raises(grpc.RpcError) as jwt:
            stub.FetchJWTSVID(workload_pb2.JWTSVIDRequest(audience=["backend"]), timeout=10)
        assert jwt.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        call = stub.FetchX509Bundles(workload_pb2.X509BundlesRequest(), metadata=HEADER, timeout=10)
        bundles = next(call)
        call.cancel()
    finally:
        channel.close()
    _, roots = sds_default(agent.socket_path)
    assert set(bundles.bundles) == {"spiffe://cluster.local"}
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    got = bundles.bundles["spiffe://cluster.local"]
    found, rest = set(), got
    while rest:
        n = der_length(rest)
        found.add(x509.load_der_x509_certificate(rest[:n]).public_bytes(Encoding.DER))
        rest = rest[n:]
    assert found == der_roots(roots)


def test_workload_api_off(wapi_agent):
    agent, _ = wapi_agent(["--workload-api=false"])
    off = first_svid_or_status(agent.socket_path)
    assert off["code"] == "UNIMPLEMENTED", off
    assert not any(line.startswith(BANNER) for line in agent.stdout_lines())


def test_own_socket(wapi_agent, tmp_path_factory):
    import grpc
    from spiffe import X509Source

    base = tmp_path_factory.mktemp("wapi")
    own = base / "workload.sock"
    group = 4242 if os.geteuid() == 0 else os.getgid()  # root may give it any group, others their own
    agent, _ = wapi_agent(["--workload-api-socket", own, "--workload-api-socket-mode", "0640",
                           "--workload-api-socket-group", group], base=base)
    agent.wait_for_line(lambda line: line == BANNER + str(own), 10)
    assert stat.S_IMODE(own.stat().st_mode) == 0o640
    assert own.stat().st_gid == group
    assert stat.S_ISSOCK(own.stat().st_mode)
    source = X509Source(socket_path=f"unix://{own}", timeout_in_seconds=UPDATE_TIMEOUT)
    try:
        leaf, _ = sds_default(agent.socket_path)
        assert source.get_x509_context().default_svid.leaf.serial_number == leaf.serial_number
    finally:
        source.close()
    with pytest.raises(grpc.RpcError) as sds:
        fetch_secrets(own, ["default"])
    assert sds.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # The SDS socket serves the Workload API too.
    assert first_svid_or_status(agent.socket_path)["ids"] == [SPIFFE_ID]


# --------------------------------------------------------------------------- JWT-SVIDs


def test_jwt_svid_fetch_validate_and_bundle(wapi_agent):
    import grpc
    import jwt as pyjwt
    from cryptography.hazmat.primitives.asymmetric import ec
    from spiffe import JwtSvid, TrustDomain, WorkloadApiClient
    from spiffe._proto import workload_pb2

    agent, admin = wapi_agent()
    client = WorkloadApiClient(socket_path=f"unix://{agent.socket_path}", default_timeout=10)
    try:
        t0 = time.monotonic()
        svid = client.fetch_jwt_svid(audience={"backend"})
        print(f"FetchJWTSVID answered in {time.monotonic() - t0:.3f}s")
        assert str(svid.spiffe_id) == SPIFFE_ID
        assert svid.audience == {"backend"}
        assert 290 <= svid.expiry - time.time() <= 301, svid.expiry
        header = pyjwt.get_unverified_header(svid.token)
        assert header["alg"] == "ES256" and header["kid"], header

        bundle = client.fetch_jwt_bundles().get_bundle_for_trust_domain(TrustDomain("cluster.local"))
        assert bundle is not None and bundle.get_jwt_authority(header["kid"]) is not None
        independent = JwtSvid.parse_and_validate(svid.token, bundle, {"backend"})
        assert str(independent.spiffe_id) == SPIFFE_ID

        assert str(client.validate_jwt_svid(svid.token, "backend").spiffe_id) == SPIFFE_ID

        # Throughput, printed: each audience is new, so each call signs a token.
        count, t1 = 200, time.monotonic()
        for i in range(count):
            client.fetch_jwt_svid(audience={f"audience-{i}"})
        elapsed = time.monotonic() - t1
        print(f"FetchJWTSVID: {count} new tokens in {elapsed:.2f}s ({count / elapsed:.0f}/s, one client in turn)")
    finally:
        client.close()

    forged = pyjwt.encode({"sub": SPIFFE_ID, "aud": ["backend"], "exp": int(time.time()) + 60},
                          ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": header["kid"]})
    channel, stub = workload_stub(agent.socket_path)
    try:
        for token, audience, needle in ((svid.token, "frontend", "audience"), (forged, "backend", "signature")):
            with pytest.raises(grpc.RpcError) as refused:
                stub.ValidateJWTSVID(workload_pb2.ValidateJWTSVIDRequest(svid=token, audience=audience),
                                     metadata=HEADER, timeout=10)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert needle in refused.value.details(), refused.value.details()
        with pytest.raises(grpc.RpcError) as other:
            stub.FetchJWTSVID(workload_pb2.JWTSVIDRequest(audience=["backend"], spiffe_id=ID_A), metadata=HEADER,
                              timeout=10)
        assert other.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        channel.close()
    metrics = admin.metrics()
    calls = "sds_agent_workload_api_calls_total"
    assert metrics.value(calls, method="ValidateJWTSVID", outcome="wrong_audience") == 1
    assert metrics.value(calls, method="ValidateJWTSVID", outcome="bad_signature") == 1
    assert metrics.value(calls, method="FetchJWTSVID", outcome="not_entitled") == 1
    assert metrics.value(calls, method="FetchJWTSVID", outcome="ok") == 201


def _kids(message, domain: str = "spiffe://cluster.local") -> list[str]:
    return [key["kid"] for key in json.loads(message.bundles[domain])["keys"]]


def test_jwt_key_rotates_with_the_root(wapi_agent):
    """Across `ca rotate-root --overlap 2s` with --jwt-svid-ttl 10s: the prepared key is published
    at once (an open FetchJWTBundles stream is pushed both kids) while the old key still signs; at
    the switch new tokens carry the new kid and a token of the old key still validates; the old
    key leaves the bundle one token lifetime after the switch, and its tokens are then refused."""
    import queue

    import grpc
    import jwt as pyjwt
    from spiffe import WorkloadApiClient
    from spiffe._proto import workload_pb2

    from conftest import agent_bin

    agent, admin = wapi_agent(["--jwt-svid-ttl", "10s"])
    state = Path(agent.state_dir)
    client = WorkloadApiClient(socket_path=f"unix://{agent.socket_path}", default_timeout=10)
    channel, stub = workload_stub(agent.socket_path)
    stream = stub.FetchJWTBundles(workload_pb2.JWTBundlesRequest(), metadata=HEADER, timeout=120)
    pushes: queue.Queue = queue.Queue()

    def read() -> None:
        try:
            for message in stream:
                pushes.put((time.monotonic(), _kids(message)))
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def next_push(predicate, what: str) -> tuple[float, list[str]]:
        deadline = time.monotonic() + 30
        while True:
            at, kids = pushes.get(timeout=max(0.1, deadline - time.monotonic()))
            if predicate(kids):
                return at, kids
            assert time.monotonic() < deadline, f"no push with {what}"

    def validate(token: str):
        return stub.ValidateJWTSVID(workload_pb2.ValidateJWTSVIDRequest(svid=token, audience="backend"),
                                    metadata=HEADER, timeout=10)

    try:
        _, first = next_push(lambda kids: True, "the first bundle")
        assert len(first) == 1, first
        old_kid = first[0]
        before = client.fetch_jwt_svid(audience={"backend"})
        assert pyjwt.get_unverified_header(before.token)["kid"] == old_kid

        started = time.monotonic()
        res = subprocess.run([str(agent_bin()), "ca", "rotate-root", "--admin", admin.address, "--overlap", "2s"],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr
        prepared_at, prepared = next_push(lambda kids: len(kids) == 2, "the prepared key")
        assert prepared[0] == old_kid, prepared
        new_kid = prepared[1]
        print(f"JWT key prepared: pushed {prepared_at - started:.2f}s after rotate-root")
        assert (state / "jwt-next-signing-key.pem").stat().st_mode & 0o777 == 0o600
        # Published before it signs: the old key still signs.
        assert pyjwt.get_unverified_header(client.fetch_jwt_svid(audience={"prepared"}).token)["kid"] == old_kid

        switched_at, switched = next_push(lambda kids: kids[:1] == [new_kid], "the new key signing")
        print(f"JWT key switched: pushed {switched_at - started:.2f}s after rotate-root, bundle {len(switched)} keys")
        assert set(switched) == {old_kid, new_kid}
        after = client.fetch_jwt_svid(audience={"backend"})
        assert pyjwt.get_unverified_header(after.token)["kid"] == new_kid, "a kept token of the old key was handed out"
        assert str(client.validate_jwt_svid(before.token, "backend").spiffe_id) == SPIFFE_ID
        assert validate(before.token).spiffe_id == SPIFFE_ID
        assert (state / "jwt-retiring-keys.json").exists()
        assert not (state / "jwt-next-signing-key.pem").exists()

        retired_at, retired = next_push(lambda kids: kids == [new_kid], "only the new key")
        print(f"JWT old key retired: pushed {retired_at - switched_at:.2f}s after the switch (--jwt-svid-ttl 10s)")
        assert not (state / "jwt-retiring-keys.json").exists()
        with pytest.raises(grpc.RpcError) as refused:
            validate(before.token)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "kid" in refused.value.details() or "expired" in refused.value.details(), refused.value.details()
        fresh = client.fetch_jwt_svid(audience={"backend", "fresh"})
        assert pyjwt.get_unverified_header(fresh.token)["kid"] == new_kid
        assert str(client.validate_jwt_svid(fresh.token, "backend").spiffe_id) == SPIFFE_ID
    finally:
        stream.cancel()
        channel.close()
        client.close()


def test_federated_jwt_bundle(wapi_agent, tmp_path):
    """A --trust-bundle SPIFFE bundle with a jwt-svid key: py-spiffe's FetchJWTBundles has it under
    its trust domain, ValidateJWTSVID accepts that domain's token signed by it, and refuses a token
    of a federated domain whose bundle has no JWT keys."""
    import base64

    import grpc
    import jwt as pyjwt
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding
    from spiffe import TrustDomain, WorkloadApiClient
    from spiffe._proto import workload_pb2

    def b64url(number: int) -> str:
        return base64.urlsafe_b64encode(number.to_bytes(32, "big")).rstrip(b"=").decode()

    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    root = x509.load_pem_x509_certificate(make_root(tmp_path, "other"))
    document = {"keys": [
        {"use": "x509-svid", "kty": "EC", "crv": "P-256",
         "x5c": [base64.b64encode(root.public_bytes(Encoding.DER)).decode()]},
        {"use": "jwt-svid", "kty": "EC", "crv": "P-256", "kid": "other-key-1",
         "x": b64url(numbers.x), "y": b64url(numbers.y)},
    ]}
    (tmp_path / "example.org.json").write_text(json.dumps(document))
    (tmp_path / "plain.example.pem").write_bytes(make_root(tmp_path, "plain"))
    agent, _ = wapi_agent(["--trust-bundle", f"spiffe://example.org={tmp_path / 'example.org.json'}",
                           "--trust-bundle", f"spiffe://plain.example={tmp_path / 'plain.example.pem'}"])
    client = WorkloadApiClient(socket_path=f"unix://{agent.socket_path}", default_timeout=10)
    channel, stub = workload_stub(agent.socket_path)
    try:
        bundles = client.fetch_jwt_bundles()
        federated = bundles.get_bundle_for_trust_domain(TrustDomain("example.org"))
        assert federated is not None and federated.get_jwt_authority("other-key-1") is not None
        assert bundles.get_bundle_for_trust_domain(TrustDomain("plain.example")) is None
        assert bundles.get_bundle_for_trust_domain(TrustDomain("cluster.local")) is not None

        claims = {"sub": "spiffe://example.org/payments", "aud": ["backend"], "exp": int(time.time()) + 60}
        token = pyjwt.encode(claims, key, algorithm="ES256", headers={"kid": "other-key-1"})
        assert str(client.validate_jwt_svid(token, "backend").spiffe_id) == "spiffe://example.org/payments"

        plain = pyjwt.encode({**claims, "sub": "spiffe://plain.example/x"}, key, algorithm="ES256",
                             headers={"kid": "other-key-1"})
        with pytest.raises(grpc.RpcError) as refused:
            stub.ValidateJWTSVID(workload_pb2.ValidateJWTSVIDRequest(svid=plain, audience="backend"),
                                 metadata=HEADER, timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "no JWT bundle for the trust domain plain.example" in refused.value.details()
    finally:
        channel.close()
        client.close()


# --------------------------------------------------------------------------- node agent


def _probe_main(args: dict) -> None:
    # Everything the probe imports is loaded while still root: the interpreter's tree may be root-only.
    import grpc  # noqa: F401
    from cryptography import x509  # noqa: F401
    from spiffe._proto import workload_pb2, workload_pb2_grpc  # noqa: F401

    os.setgroups([])
    os.setgid(args["uid"])
    os.setuid(args["uid"])
    out = first_svid_or_status(Path(args["socket"]))
    out["uid"] = os.getuid()
    print(json.dumps(out), flush=True)


def probe_as(uid: int, socket_path: Path) -> dict:
    res = subprocess.run([sys.executable, __file__, "--probe", json.dumps({"socket": str(socket_path), "uid": uid})],
                         capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent)
    assert res.returncode == 0, f"probe as uid {uid} exited {res.returncode}\n{res.stdout}\n{res.stderr}"
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["uid"] == uid, out
    return out


def test_node_agent_callers_get_only_their_own_svid(wapi_agent):
    if os.geteuid() != 0:
        pytest.fail("the node-agent test runs clients as other uids: run it as root")
    base = Path(tempfile.mkdtemp(prefix="sdsw-", dir="/tmp"))
    base.chmod(0o755)
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    agent, _ = wapi_agent(["--socket-mode", "0666", "--caller-identity", "peer",
                           "--workload", f"uid={UID_A},spiffe-id={ID_A}",
                           "--workload", f"uid={UID_B},spiffe-id={ID_B}"], base=base)
    a = probe_as(UID_A, agent.socket_path)
    b = probe_as(UID_B, agent.socket_path)
    x = probe_as(UID_X, agent.socket_path)
    assert a["code"] is None and a["ids"] == [ID_A], a
    assert b["code"] is None and b["ids"] == [ID_B], b
    assert a["serial"] != b["serial"]
    assert x["code"] == "PERMISSION_DENIED", x
    assert x["ids"] == []


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--serve":
    _serve_main(sys.argv[2])
if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--probe":
    _probe_main(json.loads(sys.argv[2]))
