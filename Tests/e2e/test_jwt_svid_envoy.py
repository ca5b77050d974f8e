"""JWT-SVIDs for Envoy over SDS: Envoy 1.40's credential injector
(`envoy.filters.http.credential_injector` with `envoy.http.injected_credentials.generic`, header
`Authorization`) takes the secret `jwt-svid:backend` from the agent (a generic_secret holding
`Bearer <JWT>`) and sends it upstream on every request.

test_envoy_sends_a_fresh_jwt_svid_without_restart: an agent with `--jwt-svid-ttl 10s` (the least
the setting allows, so a token is renewed every 5 s); Envoy (examples/envoy-jwt-svid.yaml) in
front of a small Python HTTP backend that checks each request's `Authorization: Bearer <JWT>`
with the agent's Workload API (py-spiffe's WorkloadApiClient.validate_jwt_svid, audience
`backend`). Requests pass from the first token on; over three token lifetimes the renewed tokens
(each a later `iat` and `exp`) replace the old ones on the same Envoy process, no request fails,
and the agent's /debug/streams lists Envoy's stream with the name. Run with Envoy's SDS
state-of-the-world (`GRPC`) and incremental (`DELTA_GRPC`). Printed: the time to the first
passing request, and how long after its `iat` each token first reached the backend.

Run: SDS_AGENT_BIN=.build/debug/sds-agent .venv/bin/python -m pytest Tests/e2e/test_jwt_svid_envoy.py -q -s
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import SPIFFE_ID, _start_agent
from daemon_support import AdminClient, poll, wait_admin

TTL_SECONDS = 10  # --jwt-svid-ttl's minimum
AUDIENCE = "backend"


class Backend:
    """An HTTP server on 127.0.0.1 that answers 200 to a request whose bearer token the agent's
    ValidateJWTSVID accepts for AUDIENCE with SPIFFE_ID, else 401; remembers each token's claims
    and when it first arrived."""

    def __init__(self, socket_path):
        from spiffe import WorkloadApiClient

        self.client = WorkloadApiClient(socket_path=f"unix://{socket_path}", default_timeout=10)
        self.lock = threading.Lock()
        self.first_seen: dict[str, tuple[float, dict]] = {}  # token -> (wall time, claims)
        self.refusals: list[str] = []
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                status, body = backend.check(self.headers.get("Authorization", ""))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def check(self, authorization: str) -> tuple[int, bytes]:
        import jwt as pyjwt

        if not authorization.startswith("Bearer "):
            with self.lock:
                self.refusals.append(f"no bearer token: {authorization[:40]!r}")
            return 401, b"no bearer token\n"
        token = authorization[len("Bearer "):]
        try:
            with self.lock:  # one Workload API client, one call at a time
                svid = self.client.validate_jwt_svid(token, AUDIENCE)
        except Exception as e:  # noqa: BLE001 - a refusal is what this backend reports
            with self.lock:
                self.refusals.append(f"refused: {e}")
            return 401, b"invalid token\n"
        if str(svid.spiffe_id) != SPIFFE_ID:
            with self.lock:
                self.refusals.append(f"wrong SPIFFE ID {svid.spiffe_id}")
            return 403, b"wrong identity\n"
        with self.lock:
            if token not in self.first_seen:
                self.first_seen[token] = (time.time(), pyjwt.decode(token, options={"verify_signature": False}))
        return 200, b"ok\n"

    def close(self):
        self.server.shutdown()
        self.client.close()


def get(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.parametrize("api_type", ["GRPC", "DELTA_GRPC"])
def test_envoy_sends_a_fresh_jwt_svid_without_restart(processes, tmp_path_factory, free_port, start_envoy, api_type):
    admin_address = f"127.0.0.1:{free_port()}"
    agent = _start_agent(processes, tmp_path_factory.mktemp("jwtsds"), "10m",
                         ["--admin", admin_address, "--jwt-svid-ttl", f"{TTL_SECONDS}s"])
    admin = AdminClient(admin_address)
    wait_admin(admin)
    backend = Backend(agent.socket_path)
    try:
        t0 = time.monotonic()
        envoy = start_envoy("jwt-svid", agent.socket_path, api_type=api_type, UPSTREAM_PORT=backend.port,
                            AUDIENCE=AUDIENCE)
        pid = envoy.pid
        poll(lambda: get(envoy.listen_port) == 200, 15, what="a request through Envoy passing")
        print(f"{api_type}: first passing request {time.monotonic() - t0:.2f}s after starting Envoy")

        streams = admin.json("/debug/streams")
        mine = [s for s in streams if s.get("node_id") == "jwt-svid"]
        method = "StreamSecrets" if api_type == "GRPC" else "DeltaSecrets"
        assert [s.get("method") for s in mine] == [method], streams
        assert mine[0]["resources"] == [f"jwt-svid:{AUDIENCE}"], mine

        # Three token lifetimes: at least five renewals reach the same Envoy.
        statuses: dict[int, int] = {}
        requests, end = 0, time.monotonic() + 3 * TTL_SECONDS
        while time.monotonic() < end:
            status = get(envoy.listen_port)
            statuses[status] = statuses.get(status, 0) + 1
            requests += 1
            time.sleep(0.05)  # pacing the client, not waiting for a state
        assert envoy.alive() and envoy.pid == pid, "Envoy restarted"
        with backend.lock:
            seen = sorted(backend.first_seen.values(), key=lambda entry: entry[1]["iat"])
            refusals = list(backend.refusals)
        failures = requests - statuses.get(200, 0)
        print(f"{requests} requests through Envoy over {3 * TTL_SECONDS}s: {statuses}, {failures} failed; "
              f"{len(seen)} distinct tokens")
        assert failures == 0, (statuses, refusals[:5])
        assert not refusals, refusals[:5]
        assert len(seen) >= 5, [claims for _, claims in seen]
        for (_, earlier), (_, later) in zip(seen, seen[1:]):
            assert later["iat"] > earlier["iat"] and later["exp"] > earlier["exp"], (earlier, later)
        for arrived, claims in seen:
            assert claims["sub"] == SPIFFE_ID and claims["aud"] == [AUDIENCE], claims
            assert claims["exp"] - claims["iat"] == TTL_SECONDS, claims
        renewals = [arrived - claims["iat"] for arrived, claims in seen[1:]]
        print("each renewed token first reached the backend {} s after its iat (iat is whole seconds)".format(
            ", ".join(f"{delay:.2f}" for delay in renewals)))
        gaps = [later["iat"] - earlier["iat"] for (_, earlier), (_, later) in zip(seen, seen[1:])]
        print(f"tokens signed {gaps} s apart (renewal at half of a {TTL_SECONDS}s life)")
        assert all(gap <= TTL_SECONDS // 2 + 1 for gap in gaps), gaps
    finally:
        backend.close()
