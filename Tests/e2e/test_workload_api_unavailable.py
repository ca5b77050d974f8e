"""The Workload API before the caller's first certificate: UNAVAILABLE, which clients retry.

An agent in fetch mode starts while its CA (`sds-agent ca serve`) is down: a FetchX509SVID call
with the Workload API header ends UNAVAILABLE at once, saying why, instead of hanging; once the
CA is back on the same port, py-spiffe's X509Source (which retries UNAVAILABLE with backoff) gets
the SVID the agent then serves over SDS as `default`.

Run: SDS_AGENT_BIN=.build/debug/sds-agent .venv/bin/python -m pytest Tests/e2e/test_workload_api_unavailable.py -q -s
"""

from __future__ import annotations

import time

import grpc
from spiffe import X509Source
from spiffe._proto import workload_pb2, workload_pb2_grpc

from daemon_support import fetch_secrets, leaf_of
from test_fetch_mode import fetch_mode_args

HEADER = (("workload.spiffe.io", "true"),)


def test_no_first_certificate_is_unavailable_until_the_ca_answers(start_ca_serve, start_agent, jwt_keys, tmp_path):
    ca = start_ca_serve(jwt_keys_file=jwt_keys.pem_path)
    assert ca.stop(10), "`ca serve` did not exit within 10s of SIGTERM"
    token = jwt_keys.write_token(tmp_path / "token")
    agent = start_agent("10m", extra_args=fetch_mode_args(ca, token))
    endpoint = f"unix://{agent.socket_path}"

    with grpc.insecure_channel(endpoint) as channel:
        stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)
        started = time.monotonic()
        try:
            first = next(iter(stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), metadata=HEADER, timeout=30)))
            raise AssertionError(f"an SVID was served while the CA was down: {first.svids[0].spiffe_id}")
        except grpc.RpcError as error:
            answered = time.monotonic() - started
            assert error.code() == grpc.StatusCode.UNAVAILABLE, (error.code(), error.details())
            assert "no valid X.509-SVID" in error.details(), error.details()
    print(f"\nCA down: FetchX509SVID answered UNAVAILABLE after {answered * 1000:.0f} ms")

    restarted = start_ca_serve(state_dir=ca.state_dir, port=ca.port, jwt_keys_file=jwt_keys.pem_path)
    source = X509Source(socket_path=endpoint, timeout_in_seconds=60)
    try:
        svid = source.get_x509_context().default_svid
        got = time.monotonic() - restarted.ready_at
        served = leaf_of(fetch_secrets(agent.socket_path, names=("default",)))
        assert svid.leaf.serial_number == served.serial_number, "the Workload API and SDS serve different certificates"
        print(f"CA back: py-spiffe's X509Source held the SVID {got:.2f} s after the CA was ready")
    finally:
        source.close()
