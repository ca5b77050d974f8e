"""`sds-agent ca serve --datastore` replicas sign JWT-SVIDs with the same keys (derived from the
shared roots' keys), so an agent that fails over between them gets tokens that validate against the
one JWT bundle every replica serves.

1. Two replicas on one PostgreSQL and a fetch-mode agent with both as --ca-address: py-spiffe fetches
   a JWT-SVID; the replica that signed it is killed (SIGKILL); a new token (new audience, so signed
   now) comes from the other; both validate through the agent (ValidateJWTSVID) and against the
   bundle of FetchJWTBundles; both replicas' FetchJWTBundle answered the same JWKS before the kill.
2. A root rotation started on one replica (--max-ttl, --root-overlap and --jwt-svid-ttl 10s): the
   other publishes the prepared JWT key within 2 s while it still signs with the old one; after the
   switch both sign with the new key, both bundles hold both keys, and a token of one replica
   verifies against the other's JWKS; the old key leaves both bundles one --jwt-svid-ttl later.
3. --jwt-svid-ttl above --max-ttl with --datastore stops the replica naming the setting.

Run: SDS_AGENT_BIN=$(swift build --show-bin-path)/sds-agent .venv/bin/python -m pytest Tests/e2e/test_ca_datastore_jwt.py -q -s
"""

from __future__ import annotations

import json
import time

import grpc

from conftest import SPIFFE_ID
from daemon_support import poll
from test_ca_datastore import (  # noqa: F401
    START_LIMIT, admin_ready, database, postgres, refused, replica_args, start_rotation, write_kek)
from test_ca_serve_jwt import kid_of, load_jwt_protos, validate


def jwks_of(ca) -> dict:
    jwt_pb2, jwt_pb2_grpc = load_jwt_protos()
    channel = grpc.secure_channel(ca.address, grpc.ssl_channel_credentials(ca.root_path.read_bytes()))
    try:
        response = jwt_pb2_grpc.JWTSVIDServiceStub(channel).FetchJWTBundle(jwt_pb2.FetchJWTBundleRequest(), timeout=10)
    finally:
        channel.close()
    assert response.trust_domain == "cluster.local"
    return json.loads(response.jwks)


def jwt_signed(ca) -> int:
    return sum("signed JWT-SVID" in line for line in ca.log_lines())


def test_an_agent_failing_over_between_replicas_gets_tokens_of_one_bundle(
        postgres, database, start_ca_serve, start_agent, jwt_keys, tmp_path):
    from spiffe import JwtSvid, TrustDomain, WorkloadApiClient
    from spiffe._proto import workload_pb2_grpc

    kek = write_kek(tmp_path / "kek")
    url = postgres.url(database)
    a = start_ca_serve(extra_args=replica_args(url, kek, "--replica-name", "replica-a"))
    b = start_ca_serve(extra_args=replica_args(url, kek, "--replica-name", "replica-b"))
    assert not list(a.state_dir.glob("jwt-*")) and not list(b.state_dir.glob("jwt-*")), "a JWT key file with --datastore"
    bundle_a, bundle_b = jwks_of(a), jwks_of(b)
    assert bundle_a == bundle_b and len(bundle_a["keys"]) == 1, (bundle_a, bundle_b)

    token_file = jwt_keys.write_token(tmp_path / "token")
    agent = start_agent("10m", extra_args=[
        "--ca", "istio", "--ca-address", a.address, "--ca-address", b.address, "--ca-root", str(a.root_path),
        "--token-file", str(token_file)])
    client = WorkloadApiClient(socket_path=f"unix://{agent.socket_path}", default_timeout=15)
    channel = grpc.insecure_channel(f"unix:{agent.socket_path}")
    stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)
    try:
        before = {ca.name: jwt_signed(ca) for ca in (a, b)}
        t0 = time.monotonic()
        first = client.fetch_jwt_svid(audience={"before-failover"})
        print(f"\nFetchJWTSVID through the agent from the replicas: {time.monotonic() - t0:.3f}s")
        assert str(first.spiffe_id) == SPIFFE_ID
        used = poll(lambda: next((ca for ca in (a, b) if jwt_signed(ca) > before[ca.name]), None), 5,
                    interval=0.05, what="the replica that signed the first token")
        other = b if used is a else a
        assert kid_of(first.token) == bundle_a["keys"][0]["kid"]

        used.stopped_on_purpose = True
        used.proc.kill()
        used.proc.wait(10)
        killed_at = time.monotonic()
        signed_before = jwt_signed(other)
        second = client.fetch_jwt_svid(audience={"after-failover"})
        print(f"FetchJWTSVID after SIGKILL of {used.name}: {time.monotonic() - killed_at:.3f}s")
        assert jwt_signed(other) == signed_before + 1, "the second token was not signed by the other replica"
        assert kid_of(second.token) == kid_of(first.token)

        for token, audience in ((first.token, "before-failover"), (second.token, "after-failover")):
            assert validate(stub, token, audience).spiffe_id == SPIFFE_ID
            assert str(client.validate_jwt_svid(token, audience).spiffe_id) == SPIFFE_ID
        bundle = client.fetch_jwt_bundles().get_bundle_for_trust_domain(TrustDomain("cluster.local"))
        assert bundle is not None
        for token, audience in ((first.token, "before-failover"), (second.token, "after-failover")):
            assert str(JwtSvid.parse_and_validate(token, bundle, {audience}).spiffe_id) == SPIFFE_ID
        assert jwks_of(other) == bundle_a
    finally:
        channel.close()
        client.close()
    logs = agent.stderr_path.read_text() + a.stderr_path.read_text() + b.stderr_path.read_text()
    assert "eyJ" not in logs, "a token in a log"


def sign_on(ca, jwt_keys, audience: str = "backend") -> str:
    jwt_pb2, jwt_pb2_grpc = load_jwt_protos()
    channel = grpc.secure_channel(ca.address, grpc.ssl_channel_credentials(ca.root_path.read_bytes()))
    try:
        return jwt_pb2_grpc.JWTSVIDServiceStub(channel).SignJWTSVID(
            jwt_pb2.SignJWTSVIDRequest(audience=[audience]),
            metadata=[("authorization", f"Bearer {jwt_keys.mint()}")], timeout=10).token
    finally:
        channel.close()


def verifies_with(token: str, jwks: dict, audience: str = "backend") -> bool:
    import jwt as pyjwt

    key = next((k for k in jwks["keys"] if k["kid"] == kid_of(token)), None)
    if key is None:
        return False
    return pyjwt.decode(token, pyjwt.PyJWK(key).key, algorithms=["ES256"], audience=audience)["sub"] == SPIFFE_ID


def kids(jwks: dict) -> set[str]:
    return {k["kid"] for k in jwks["keys"]}


def test_a_rotation_on_one_replica_publishes_the_next_key_on_the_other_before_it_signs(
        postgres, database, start_ca_serve, free_port, jwt_keys, tmp_path):
    kek = write_kek(tmp_path / "kek")
    replicas = []
    for name in ("a", "b"):
        admin = f"127.0.0.1:{free_port()}"
        ca = start_ca_serve(extra_args=replica_args(
            postgres.url(database), kek, "--admin", admin, "--replica-name", f"replica-{name}",
            "--max-ttl", "10s", "--root-overlap", "10s", "--jwt-svid-ttl", "10s"))
        admin_ready(admin)
        replicas.append((ca, admin))
    (a, admin_a), (b, _) = replicas
    old_kid = kid_of(sign_on(b, jwt_keys))

    t0 = time.monotonic()
    start_rotation(admin_a)
    def two_keys_on_b():
        bundle = jwks_of(b)
        return bundle if len(bundle["keys"]) == 2 else None

    prepared = poll(two_keys_on_b, 2.0, interval=0.05, what="the prepared JWT key in b's bundle")
    print(f"\nrotation started on a: the prepared JWT key in b's bundle after {time.monotonic() - t0:.3f}s")
    next_kid = (kids(prepared) - {old_kid}).pop()
    assert kids(jwks_of(a)) == {old_kid, next_kid}
    last_old = [sign_on(b, jwt_keys)]
    assert kid_of(last_old[0]) == old_kid, "b signs with the prepared key before the switch"

    def new_key_on_b():
        token = sign_on(b, jwt_keys)
        if kid_of(token) == next_kid:
            return token
        last_old[0] = token
        return None

    first_new = poll(new_key_on_b, 20, interval=0.2, what="b signing with the new key")
    switched = time.monotonic()
    print(f"b signs with the new JWT key {switched - t0:.1f}s after rotate-root (--root-overlap 10s)")
    assert kid_of(sign_on(a, jwt_keys)) == next_kid
    for ca in (a, b):
        bundle = jwks_of(ca)
        assert kids(bundle) == {old_kid, next_kid}, (ca.name, bundle)
        assert verifies_with(last_old[0], bundle) and verifies_with(first_new, bundle), ca.name

    poll(lambda: kids(jwks_of(a)) == {next_kid} and kids(jwks_of(b)) == {next_kid}, 20, interval=0.2,
         what="the old JWT key retired on both")
    print(f"old JWT key retired on both {time.monotonic() - switched:.1f}s after b's switch (--jwt-svid-ttl 10s)")


def test_a_jwt_svid_ttl_above_the_max_ttl_stops_a_datastore_replica(
        postgres, database, free_port, jwt_keys, tmp_path):
    kek = write_kek(tmp_path / "kek")
    code, seconds, stderr = refused(tmp_path, jwt_keys, free_port, *replica_args(
        postgres.url(database), kek, "--max-ttl", "1m", "--jwt-svid-ttl", "5m"))
    assert code != 0 and seconds < START_LIMIT, (code, seconds, stderr)
    assert "jwt-svid-ttl" in stderr and "at most --max-ttl (1m)" in stderr, stderr
