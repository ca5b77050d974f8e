"""DeltaSecrets: Envoy with `api_type: DELTA_GRPC` gets `default` and `ROOTCA` through rotation
like state of the world, and the incremental protocol checked with an independent grpcio client
(xds-protos): subscribe, ACK, versions the client already holds, unsubscribe, refusals.
"""

from __future__ import annotations

import functools
import queue

import grpc

from conftest import StreamCall
from daemon_support import RESPONSE_TIMEOUT, sds_stub
from test_fetch_mode import rotation_under_traffic

SECRET_TYPE_URL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"


def test_envoy_over_delta_grpc_through_rotation(start_agent, start_envoy):
    agent = start_agent("10s")
    delta_envoy = functools.partial(start_envoy, api_type="DELTA_GRPC")
    rotation_under_traffic(agent, delta_envoy, min_serials=3, min_duration=20, max_duration=45)
    subscribed = [line for line in agent.log_lines() if "SDS delta stream subscribed" in line]
    assert len(subscribed) >= 2, "the Envoys did not use DeltaSecrets"
    assert not any("rpc=StreamSecrets" in line for line in agent.log_lines()), "an Envoy fell back to SotW"


def delta_request(subscribe=(), unsubscribe=(), initial=None, nonce="", error=None, node="delta-e2e"):
    from envoy.config.core.v3 import base_pb2
    from envoy.service.discovery.v3 import discovery_pb2
    from google.rpc import status_pb2

    kw = {}
    if error is not None:
        kw["error_detail"] = status_pb2.Status(code=3, message=error)
    return discovery_pb2.DeltaDiscoveryRequest(
        node=base_pb2.Node(id=node, cluster="e2e"), type_url=SECRET_TYPE_URL,
        resource_names_subscribe=list(subscribe), resource_names_unsubscribe=list(unsubscribe),
        initial_resource_versions=initial or {}, response_nonce=nonce, **kw)


class DeltaCall(StreamCall):
    def __init__(self, socket_path):
        self.channel, stub = sds_stub(socket_path)
        super().__init__(lambda requests: stub.DeltaSecrets(requests, timeout=120), label="delta")

    def response(self, timeout: float = RESPONSE_TIMEOUT):
        return self.next_response(timeout)

    def quiet(self, window: float = 1.0) -> bool:
        try:
            kind, value = self.events.get(timeout=window)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected {kind}: {value}")


def names(resp) -> dict[str, str]:
    return {r.name: r.version for r in resp.resources}


def test_delta_protocol_with_an_independent_client(module_agent):
    call = DeltaCall(module_agent.socket_path)
    call.send(delta_request(subscribe=["default"]))
    first = call.response()
    assert first.type_url == SECRET_TYPE_URL and first.nonce
    assert list(names(first)) == ["default"]
    call.send(delta_request(nonce=first.nonce))  # ACK
    call.send(delta_request(subscribe=["ROOTCA"]))
    second = call.response()
    assert list(names(second)) == ["ROOTCA"], "a delta response carries only what the client lacks"
    call.send(delta_request(nonce=second.nonce))
    call.send(delta_request(unsubscribe=["ROOTCA"]))
    assert call.quiet(), "an unsubscribe is answered with nothing"
    call.send(delta_request(subscribe=["ROOTCA"]))
    assert list(names(call.response())) == ["ROOTCA"], "a re-subscription is sent again"

    # A new stream that already holds the current versions gets nothing it has.
    again = DeltaCall(module_agent.socket_path)
    versions = {**names(first), **names(second)}
    again.send(delta_request(subscribe=["default", "ROOTCA"], initial=versions))
    assert again.quiet(), "resources the client already holds were sent again"
    # One it holds at an old version is sent.
    third = DeltaCall(module_agent.socket_path)
    third.send(delta_request(subscribe=["default", "ROOTCA"], initial={"default": "0", **names(second)}))
    assert list(names(third.response())) == ["default"]

    # Unknown and forbidden names end the stream with the status SotW gives them.
    for name, code in (("nope", grpc.StatusCode.NOT_FOUND),
                       ("spiffe://cluster.local/ns/other/sa/other", grpc.StatusCode.PERMISSION_DENIED)):
        bad = DeltaCall(module_agent.socket_path)
        bad.send(delta_request(subscribe=[name]))
        kind, error = bad.next_event(RESPONSE_TIMEOUT)
        assert kind == "error" and error.code() == code, (kind, error)
        assert "nope" in error.details() or "may not" in error.details()
    for c in (call, again, third):
        c.send(None)
