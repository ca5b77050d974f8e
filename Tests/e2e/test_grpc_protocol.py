"""gRPC's protocol rules on the SDS socket, checked with a raw HTTP/2 client (h2) and grpcio:
content type, unknown methods, compression, grpc-timeout, message size, percent-encoded status
messages, the rapid-reset guard, and the GOAWAY of a graceful stop."""

import signal

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc

from conftest import SECRET_TYPE_URL
from h2_client import H2Connection, grpc_frame, grpc_messages

UNIMPLEMENTED, INVALID_ARGUMENT, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL = 12, 3, 4, 8, 13
ENHANCE_YOUR_CALM, NO_ERROR, COMPRESSION_ERROR = 11, 0, 9


def sds_request(*names: str) -> bytes:
    return discovery_pb2.DiscoveryRequest(
        node=base_pb2.Node(id="h2-client"), type_url=SECRET_TYPE_URL, resource_names=list(names)
    ).SerializeToString()


@pytest.fixture
def h2(module_agent):
    connection = H2Connection(str(module_agent.socket_path))
    yield connection
    connection.close()


def fetch_default(connection: H2Connection) -> discovery_pb2.DiscoveryResponse:
    stream = connection.start("FetchSecrets")
    connection.send(stream, grpc_frame(sds_request("default")), end_stream=True)
    result = connection.wait_ended(stream)
    assert result.grpc_status == 0, (result.headers, result.trailers)
    [message] = grpc_messages(result.data)
    return discovery_pb2.DiscoveryResponse.FromString(message)


def test_fetch_over_raw_http2_answers_with_headers_message_and_trailers(h2):
    response = fetch_default(h2)
    assert [r.type_url for r in response.resources] == [SECRET_TYPE_URL]
    result = h2.streams[1]
    assert result.headers[":status"] == "200" and result.headers["content-type"] == "application/grpc"
    assert result.trailers["grpc-status"] == "0"


def test_an_unknown_method_is_unimplemented_and_the_connection_keeps_serving(h2):
    stream = h2.start("", path="/grpc.health.v1.Health/Check" + "x" * 5000)
    h2.send(stream, grpc_frame(b""), end_stream=True)
    result = h2.wait_ended(stream)
    assert result.headers[":status"] == "200"
    assert result.grpc_status == UNIMPLEMENTED
    assert "unknown method /grpc.health.v1.Health/Check" in result.grpc_message
    assert len(result.grpc_message) < 1000, "the status echoes an unbounded path"
    fetch_default(h2)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "snappy"])
def test_a_compressed_request_encoding_is_unimplemented(h2, encoding):
    stream = h2.start("FetchSecrets", extra=[("grpc-encoding", encoding)])
    h2.send(stream, grpc_frame(sds_request("default")), end_stream=True)
    result = h2.wait_ended(stream)
    assert result.grpc_status == UNIMPLEMENTED
    assert encoding in result.grpc_message


def test_a_compressed_message_without_an_encoding_is_an_internal_error(h2):
    stream = h2.start("FetchSecrets")
    h2.send(stream, grpc_frame(sds_request("default"), compressed=True), end_stream=True)
    assert h2.wait_ended(stream).grpc_status == INTERNAL


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/grpc-web", ""])
def test_a_wrong_content_type_is_refused_with_415(h2, content_type):
    stream = h2.start("FetchSecrets", content_type=content_type)
    h2.send(stream, grpc_frame(sds_request("default")), end_stream=True)
    result = h2.wait_ended(stream)
    assert result.headers[":status"] == "415", result.headers
    assert result.grpc_status == INTERNAL


def test_a_codec_suffix_on_the_content_type_is_grpc(h2):
    stream = h2.start("FetchSecrets", content_type="application/grpc+proto")
    h2.send(stream, grpc_frame(sds_request("default")), end_stream=True)
    assert h2.wait_ended(stream).grpc_status == 0


def test_a_header_block_over_16_kib_closes_that_connection_only(module_agent, h2):
    stream = h2.start("FetchSecrets", extra=[("x-padding", "a" * 20000)])
    assert h2.pump(lambda: h2.goaway is not None or h2.closed, timeout=15)
    assert h2.goaway is not None and h2.goaway.error_code == COMPRESSION_ERROR, h2.goaway
    assert not h2.streams[stream].ended
    other = H2Connection(str(module_agent.socket_path))
    try:
        fetch_default(other)
    finally:
        other.close()


def test_a_get_is_refused_with_405(h2):
    stream = h2.start("FetchSecrets", http_method="GET", end_stream=True)
    assert h2.wait_ended(stream).headers[":status"] == "405"


def test_grpc_timeout_ends_a_fetch_that_waits_with_deadline_exceeded(h2):
    # The request message never comes: only the deadline can end the call.
    stream = h2.start("FetchSecrets", extra=[("grpc-timeout", "300m")])
    result = h2.wait_ended(stream, timeout=10)
    assert result.grpc_status == DEADLINE_EXCEEDED, (result.headers, result.trailers)
    assert result.reset_code in (None, NO_ERROR)


def test_a_malformed_grpc_timeout_is_invalid_argument(h2):
    stream = h2.start("FetchSecrets", extra=[("grpc-timeout", "soon")])
    h2.send(stream, grpc_frame(sds_request("default")), end_stream=True)
    assert h2.wait_ended(stream).grpc_status == INVALID_ARGUMENT


def test_a_message_over_the_limit_is_resource_exhausted_before_it_is_read(h2):
    stream = h2.start("StreamSecrets")
    # The prefix declares 5 MiB; the agent refuses on the prefix, without waiting for the bytes.
    h2.send(stream, grpc_frame(b"\x0a", declared_length=5 * 1024 * 1024))
    result = h2.wait_ended(stream)
    assert result.grpc_status == RESOURCE_EXHAUSTED
    assert "4194304" in result.grpc_message
    fetch_default(h2)


def test_grpcio_sending_over_four_mib_gets_resource_exhausted(module_agent):
    with grpc.insecure_channel(f"unix:{module_agent.socket_path}") as channel:
        stub = sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
        huge = discovery_pb2.DiscoveryRequest(
            node=base_pb2.Node(id="n" * (5 * 1024 * 1024)), type_url=SECRET_TYPE_URL, resource_names=["default"])
        with pytest.raises(grpc.RpcError) as raised:
            stub.FetchSecrets(huge, timeout=30)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, raised.value
        ok = stub.FetchSecrets(discovery_pb2.DiscoveryRequest(
            type_url=SECRET_TYPE_URL, resource_names=["default"]), timeout=30)
        assert len(ok.resources) == 1


def test_status_messages_are_percent_encoded(module_agent):
    name = "caf\u00e9 100%"
    with grpc.insecure_channel(f"unix:{module_agent.socket_path}") as channel:
        stub = sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.FetchSecrets(discovery_pb2.DiscoveryRequest(type_url=SECRET_TYPE_URL, resource_names=[name]), timeout=30)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert f'"{name}"' in raised.value.details(), raised.value.details()


def test_streams_reset_before_any_response_trip_the_rapid_reset_guard(h2):
    # Opened and reset at once, as in CVE-2023-44487: the connection is told to calm down.
    for _ in range(250):
        if h2.write_closed:
            break
        stream = h2.start("StreamSecrets")
        h2.reset(stream)
    assert h2.pump(lambda: h2.goaway is not None, timeout=15), "no GOAWAY after 250 unserved resets"
    assert h2.goaway.error_code == ENHANCE_YOUR_CALM


def test_cancelling_served_streams_never_trips_the_guard(h2):
    # Envoy cancels many streams at once when a configuration change drops its secrets.
    streams = []
    for _ in range(1000):
        stream = h2.start("StreamSecrets")
        h2.send(stream, grpc_frame(sds_request("default")))
        streams.append(stream)
    for stream in streams:
        assert len(h2.wait_messages(stream, 1)) == 1
    for stream in streams[:-1]:
        h2.reset(stream)
    survivor = streams[-1]
    h2.pump(lambda: h2.goaway is not None, timeout=2)
    assert h2.goaway is None, f"GOAWAY {h2.goaway} after resets of served streams"
    assert not h2.streams[survivor].ended and h2.streams[survivor].reset_code is None
    fetch_default(h2)


def test_a_graceful_stop_ends_streams_with_ok_and_sends_goaway(start_agent):
    agent = start_agent(cert_ttl="600s")
    connection = H2Connection(str(agent.socket_path))
    try:
        stream = connection.start("StreamSecrets")
        connection.send(stream, grpc_frame(sds_request("default")))
        assert len(connection.wait_messages(stream, 1)) == 1
        agent.signal(signal.SIGTERM)
        result = connection.wait_ended(stream)
        assert result.grpc_status == 0, (result.trailers, result.reset_code)
        assert connection.pump(lambda: connection.goaway is not None or connection.closed, timeout=15)
        if connection.goaway is not None:
            assert connection.goaway.error_code == NO_ERROR
        assert agent.wait_exit(15) == 0
    finally:
        connection.close()
