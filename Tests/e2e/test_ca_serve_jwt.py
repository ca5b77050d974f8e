"""`sds-agent ca serve` signs JWT-SVIDs for the agents that fetch from it (`sdsagent.ca.v1.JWTSVIDService`).

1. test_fetch_mode_agent_serves_jwt_svids_from_ca_serve: an agent in fetch mode (`--ca-address`)
   backed by `ca serve`: py-spiffe's WorkloadApiClient fetches a JWT-SVID (signed by the CA's key,
   whose file is 0600 in its state directory), validates it through the agent (ValidateJWTSVID) and
   on its own against the JWKS from FetchJWTBundles; the SDS secret `jwt-svid:backend` on a
   stream is a `Bearer` token of the same key, renewed and pushed at half its life. Through `ca rotate-root` (--max-ttl 10s, --root-overlap 10s,
   --jwt-svid-ttl 10s): the last token of the old key keeps validating after the switch until it
   expires, and new tokens carry the new `kid`.
2. test_ca_serve_authorizes_jwt_svids_like_certificates: grpcio straight to `ca serve`: a caller's
   own identity is signed, another identity is PERMISSION_DENIED (not a trusted node identity),
   no token is UNAUTHENTICATED, 17 audiences INVALID_ARGUMENT; FetchJWTBundle needs no token.

Run: SDS_AGENT_BIN=.build/debug/sds-agent .venv/bin/python -m pytest Tests/e2e/test_ca_serve_jwt.py -q -s
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path

import grpc
import pytest

from conftest import SPIFFE_ID
from daemon_support import SdsStream, poll, secrets_of
from test_daemon import run_cli
from test_fetch_mode import fetch_mode_args

PROTO_ROOT = Path(__file__).resolve().parents[2] / "Sources" / "EnvoySDSProtos" / "Protos"
JWT_PROTO = "sdsagent/ca/v1/jwt.proto"
HEADER = (("workload.spiffe.io", "true"),)
CA_ARGS = ["--max-ttl", "10s", "--root-overlap", "10s", "--jwt-svid-ttl", "10s"]


def load_jwt_protos():
    """(jwt_pb2, jwt_pb2_grpc) generated with grpcio-tools into a cache directory keyed by the
    .proto's hash, as istio_ca.load_protos does; nothing is written to the repo."""
    from grpc_tools import protoc

    digest = hashlib.sha256((PROTO_ROOT / JWT_PROTO).read_bytes()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"sds-agent-e2e-jwt-protos-{digest}"
    if not (out / "sdsagent" / "ca" / "v1" / "jwt_pb2_grpc.py").exists():
        tmp = Path(tempfile.mkdtemp(prefix=out.name + ".tmp.", dir=out.parent))
        include = str(importlib.resources.files("grpc_tools") / "_proto")
        rc = protoc.main(["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={tmp}",
                          f"--grpc_python_out={tmp}", JWT_PROTO])
        assert rc == 0, f"grpc_tools.protoc failed ({rc}) on {JWT_PROTO}"
        try:
            os.rename(tmp, out)
        except OSError:  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))
    from sdsagent.ca.v1 import jwt_pb2, jwt_pb2_grpc  # noqa: E402

    return jwt_pb2, jwt_pb2_grpc


def kid_of(token: str) -> str:
    import jwt as pyjwt

    return pyjwt.get_unverified_header(token)["kid"]


def audience_of(token: str) -> str:
    import jwt as pyjwt

    return pyjwt.decode(token, options={"verify_signature": False})["aud"][0]


def bearer_of(response) -> str:
    value = secrets_of(response)["jwt-svid:backend"].generic_secret.secret.inline_string
    assert value.startswith("Bearer "), value[:10]
    return value[len("Bearer "):]


def validate(stub, token: str, audience: str = "backend"):
    from spiffe._proto import workload_pb2

    return stub.ValidateJWTSVID(workload_pb2.ValidateJWTSVIDRequest(svid=token, audience=audience),
                                metadata=HEADER, timeout=10)


def test_fetch_mode_agent_serves_jwt_svids_from_ca_serve(start_ca_serve, start_agent, jwt_keys, tmp_path):
    from spiffe import JwtSvid, TrustDomain, WorkloadApiClient
    from spiffe._proto import workload_pb2_grpc

    admin = f"unix:{tmp_path / 'ca-admin.sock'}"
    ca = start_ca_serve(extra_args=[*CA_ARGS, "--admin", admin])
    key_file = ca.state_dir / "jwt-signing-key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600, oct(key_file.stat().st_mode)
    token = jwt_keys.write_token(tmp_path / "token")
    agent = start_agent("10m", extra_args=fetch_mode_args(ca, token))
    client = WorkloadApiClient(socket_path=f"unix://{agent.socket_path}", default_timeout=15)
    channel = grpc.insecure_channel(f"unix:{agent.socket_path}")
    stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)
    try:
        t0 = time.monotonic()
        svid = client.fetch_jwt_svid(audience={"backend"})
        print(f"FetchJWTSVID through the agent from ca serve: {time.monotonic() - t0:.3f}s")
        assert str(svid.spiffe_id) == SPIFFE_ID and svid.audience == {"backend"}
        assert 5 <= svid.expiry - time.time() <= 11, svid.expiry
        old_kid = kid_of(svid.token)
        t1 = time.monotonic()
        assert client.fetch_jwt_svid(audience={"backend"}).token == svid.token, "the kept token was not served"
        print(f"FetchJWTSVID, kept token: {time.monotonic() - t1:.4f}s")
        # Throughput, printed: each audience is new, so each call is a SignJWTSVID round trip to
        # `ca serve` (TLS) and a verification against the followed bundle.
        count, t3 = 200, time.monotonic()
        for i in range(count):
            client.fetch_jwt_svid(audience={f"audience-{i}"})
        elapsed = time.monotonic() - t3
        print(f"FetchJWTSVID from ca serve: {count} new tokens in {elapsed:.2f}s ({count / elapsed:.0f}/s, "
              "one client in turn)")

        bundle = client.fetch_jwt_bundles().get_bundle_for_trust_domain(TrustDomain("cluster.local"))
        assert bundle is not None and bundle.get_jwt_authority(old_kid) is not None
        assert str(JwtSvid.parse_and_validate(svid.token, bundle, {"backend"}).spiffe_id) == SPIFFE_ID
        assert str(client.validate_jwt_svid(svid.token, "backend").spiffe_id) == SPIFFE_ID
        with pytest.raises(grpc.RpcError) as wrong:
            validate(stub, svid.token, "frontend")
        assert wrong.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "audience" in wrong.value.details()

        stream = SdsStream(agent.socket_path, ["jwt-svid:backend"])
        try:
            bearer = bearer_of(stream.first_response_acked())
            assert kid_of(bearer) == old_kid
            assert str(JwtSvid.parse_and_validate(bearer, bundle, {"backend"}).spiffe_id) == SPIFFE_ID
            # Renewed at half its life (5 s) and pushed on the open stream.
            t2 = time.monotonic()
            renewed_sds = bearer_of(stream.first_response_acked(timeout=15))
            print(f"jwt-svid:backend renewed and pushed {time.monotonic() - t2:.1f}s after the first")
            assert renewed_sds != bearer
            assert str(JwtSvid.parse_and_validate(renewed_sds, bundle, {"backend"}).spiffe_id) == SPIFFE_ID
        finally:
            stream.close()

        res = run_cli("ca", "rotate-root", "--admin", admin)
        assert res.returncode == 0, res.stderr
        rotated_at = time.monotonic()
        last_old: list[str] = []

        def new_kid_signs():
            # A new audience each time, so that each token is signed by the CA now.
            token = client.fetch_jwt_svid(audience={f"poll-{time.monotonic_ns()}"}).token
            if kid_of(token) == old_kid:
                last_old[:] = [token]
                return None
            return token

        first_new = poll(new_kid_signs, timeout=40, interval=0.5, what="a token of the new key")
        new_kid = kid_of(first_new)
        print(f"new kid signing {time.monotonic() - rotated_at:.1f}s after rotate-root (--root-overlap 10s)")
        assert last_old, "no token of the old key was signed during the overlap"
        old_token = last_old[0]
        audience = audience_of(old_token)
        # The old key's last token still validates after the switch, through the agent.
        assert str(validate(stub, old_token, audience).spiffe_id) == SPIFFE_ID
        rotated = client.fetch_jwt_bundles().get_bundle_for_trust_domain(TrustDomain("cluster.local"))
        assert rotated.get_jwt_authority(old_kid) is not None and rotated.get_jwt_authority(new_kid) is not None
        assert str(client.validate_jwt_svid(first_new, audience_of(first_new)).spiffe_id) == SPIFFE_ID
        renewed = poll(lambda: (t := client.fetch_jwt_svid(audience={"backend"}).token) and kid_of(t) == new_kid and t,
                       timeout=15, interval=0.5, what="the kept `backend` token renewed with the new key")
        assert renewed != svid.token

        def expired():
            try:
                validate(stub, old_token, audience)
                return None
            except grpc.RpcError as refused:
                return refused

        refused = poll(expired, timeout=20, interval=0.5, what="the old key's last token refused")
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "expired" in refused.details() or "kid" in refused.details(), refused.details()
        print(f"old key's last token refused ({refused.details()[:60]}) "
              f"{time.monotonic() - rotated_at:.1f}s after rotate-root")
    finally:
        channel.close()
        client.close()
    # Tokens (compact JWS, base64url of `{"`) are never logged, by the agent or by `ca serve`.
    assert "eyJ" not in agent.stderr_path.read_text() + ca.stderr_path.read_text(), "a token in a log"


def test_ca_serve_authorizes_jwt_svids_like_certificates(start_ca_serve, jwt_keys):
    jwt_pb2, jwt_pb2_grpc = load_jwt_protos()
    ca = start_ca_serve(extra_args=CA_ARGS)
    channel = grpc.secure_channel(ca.address, grpc.ssl_channel_credentials(ca.root_path.read_bytes()))
    stub = jwt_pb2_grpc.JWTSVIDServiceStub(channel)
    caller = [("authorization", f"Bearer {jwt_keys.mint()}")]
    try:
        own = stub.SignJWTSVID(jwt_pb2.SignJWTSVIDRequest(audience=["backend"]), metadata=caller, timeout=15)
        bundle = stub.FetchJWTBundle(jwt_pb2.FetchJWTBundleRequest(), timeout=15)
        assert bundle.trust_domain == "cluster.local"
        keys = json.loads(bundle.jwks)["keys"]
        assert [k["use"] for k in keys] == ["jwt-svid"] and keys[0]["kid"] == kid_of(own.token)

        import jwt as pyjwt

        public = pyjwt.PyJWK(keys[0]).key
        claims = pyjwt.decode(own.token, public, algorithms=["ES256"], audience="backend")
        assert claims["sub"] == SPIFFE_ID and claims["exp"] - claims["iat"] == 10, claims

        refusals = [
            (jwt_pb2.SignJWTSVIDRequest(spiffe_id="spiffe://cluster.local/ns/other/sa/x", audience=["b"]), caller,
             grpc.StatusCode.PERMISSION_DENIED),
            (jwt_pb2.SignJWTSVIDRequest(audience=["backend"]), [], grpc.StatusCode.UNAUTHENTICATED),
            (jwt_pb2.SignJWTSVIDRequest(audience=[f"a{i}" for i in range(17)]), caller,
             grpc.StatusCode.INVALID_ARGUMENT),
        ]
        for request, metadata, code in refusals:
            with pytest.raises(grpc.RpcError) as refused:
                stub.SignJWTSVID(request, metadata=metadata, timeout=15)
            assert refused.value.code() == code, (refused.value.code(), refused.value.details())
            print(f"SignJWTSVID refused: {code.name}: {refused.value.details()[:100]}")
    finally:
        channel.close()
    assert "eyJ" not in ca.stderr_path.read_text() + "".join(ca.stdout_lines()), "a token in ca serve's output"
