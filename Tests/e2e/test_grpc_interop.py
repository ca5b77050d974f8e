"""An independent SDS client (grpcio + xds-protos) against the real agent."""

import collections

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc
from google.rpc import status_pb2

from conftest import SECRET_TYPE_URL, StreamCall

NODE = base_pb2.Node(id="e2e-grpc-client", cluster="e2e")
RESPONSE_TIMEOUT = 15.0  # liveness bound for responses that must arrive
SILENCE_WINDOW = 3.0  # how long we watch for responses that must NOT arrive


@pytest.fixture(scope="module")
def stub(module_agent):
    channel = grpc.insecure_channel(f"unix:{module_agent.socket_path}")
    yield sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
    channel.close()


def request(names=(), **kw):
    return discovery_pb2.DiscoveryRequest(node=NODE, type_url=SECRET_TYPE_URL, resource_names=list(names), **kw)


def secrets_of(resp) -> list:
    out = []
    for any_ in resp.resources:
        assert any_.type_url == SECRET_TYPE_URL, any_.type_url
        s = secret_pb2.Secret()
        assert any_.Unpack(s)
        out.append(s)
    return out


def inline_pem(source) -> str:
    """PEM text of an inline DataSource (inline_string or inline_bytes)."""
    kind = source.WhichOneof("specifier")
    assert kind in ("inline_string", "inline_bytes"), f"not an inline data source: {kind}"
    value = getattr(source, kind)
    return value.decode() if isinstance(value, bytes) else value


class SdsStream(StreamCall):
    """A StreamSecrets call on `stub`, driven from the test."""

    def __init__(self, stub):
        super().__init__(lambda requests: stub.StreamSecrets(requests, timeout=120))

    def next_response(self, timeout=RESPONSE_TIMEOUT):
        return super().next_response(timeout)

    def next_error(self, timeout=RESPONSE_TIMEOUT) -> grpc.RpcError:
        return super().next_error(timeout)

    def close(self):
        self._requests.put(None)
        self.call.cancel()


@pytest.fixture
def open_stream(stub):
    streams = []

    def open_():
        streams.append(SdsStream(stub))
        return streams[-1]

    yield open_
    for s in streams:
        s.close()


def test_fetch_default(stub):
    resp = stub.FetchSecrets(request(["default"]), timeout=RESPONSE_TIMEOUT)
    assert resp.type_url == SECRET_TYPE_URL
    assert len(resp.resources) == 1, [a.type_url for a in resp.resources]
    (secret,) = secrets_of(resp)
    assert secret.name == "default"
    assert secret.HasField("tls_certificate")
    chain = inline_pem(secret.tls_certificate.certificate_chain)
    key = inline_pem(secret.tls_certificate.private_key)
    assert chain.startswith("-----BEGIN CERTIFICATE-----"), chain[:80]
    assert "-----BEGIN " + "PRIVATE KEY-----" in key, "private key is not PKCS#8 PEM"
    print(f"fetch: version_info={resp.version_info!r} chain_certs={chain.count('BEGIN CERTIFICATE')}")


def test_stream_response_then_ack_is_quiet(open_stream):
    stream = open_stream()
    stream.send(request(["default", "ROOTCA"]))
    resp = stream.next_response()
    secrets = secrets_of(resp)
    assert collections.Counter(s.name for s in secrets) == {"default": 1, "ROOTCA": 1}
    by_name = {s.name: s for s in secrets}
    assert by_name["default"].HasField("tls_certificate")
    assert inline_pem(by_name["ROOTCA"].validation_context.trusted_ca).startswith("-----BEGIN CERTIFICATE-----")
    assert resp.version_info, "empty version_info"
    assert resp.nonce, "empty nonce"
    print(f"stream: version_info={resp.version_info!r} nonce={resp.nonce!r}")

    stream.send(request(["default", "ROOTCA"], version_info=resp.version_info, response_nonce=resp.nonce))
    event = stream.event_within(SILENCE_WINDOW)
    assert event is None, f"ACK was answered within {SILENCE_WINDOW:.0f}s: {event}"


def test_nack_not_answered_with_same_payload(open_stream):
    stream = open_stream()
    stream.send(request(["default", "ROOTCA"]))
    first = stream.next_response()
    stream.send(request(["default", "ROOTCA"], response_nonce=first.nonce,
                        error_detail=status_pb2.Status(code=grpc.StatusCode.INVALID_ARGUMENT.value[0],
                                                       message="e2e test: rejected on purpose")))
    event = stream.event_within(SILENCE_WINDOW)
    if event is None:
        print(f"NACK: no response within {SILENCE_WINDOW:.0f}s")
        return
    kind, value = event
    assert kind == "response", f"stream did not survive a NACK: {kind} {getattr(value, 'details', lambda: value)()}"
    assert list(value.resources) != list(first.resources), "NACKed payload was sent again"
    print(f"NACK answered with a different payload (version_info={value.version_info!r})")


@pytest.mark.parametrize("rpc", ["stream", "fetch"])
def test_unknown_resource_is_an_error(rpc, stub, open_stream):
    if rpc == "fetch":
        with pytest.raises(grpc.RpcError) as info:
            resp = stub.FetchSecrets(request(["nope"]), timeout=RESPONSE_TIMEOUT)
            print(f"unexpected response: {resp}")
        error = info.value
    else:
        stream = open_stream()
        stream.send(request(["nope"]))
        error = stream.next_error()
    print(f"{rpc}: {error.code()} {error.details()!r}")
    assert error.code() != grpc.StatusCode.OK
    assert "default" in error.details() and "ROOTCA" in error.details(), error.details()


@pytest.mark.parametrize("previous", ["from_earlier_stream", "made_up"])
def test_new_stream_with_old_version_gets_current_secrets(previous, stub, open_stream):
    if previous == "from_earlier_stream":
        old = open_stream()
        old.send(request(["default", "ROOTCA"]))
        resp = old.next_response()
        old.send(request(["default", "ROOTCA"], version_info=resp.version_info, response_nonce=resp.nonce))
        old.close()
        version, nonce = resp.version_info, resp.nonce
    else:
        version, nonce = "e2e-stale-version-0", "e2e-stale-nonce-0"

    stream = open_stream()
    stream.send(request(["default", "ROOTCA"], version_info=version, response_nonce=nonce))
    resp = stream.next_response()
    names = collections.Counter(s.name for s in secrets_of(resp))
    assert names == {"default": 1, "ROOTCA": 1}
    current = {s.name: s for s in secrets_of(stub.FetchSecrets(request(["default"]), timeout=RESPONSE_TIMEOUT))}
    got = {s.name: s for s in secrets_of(resp)}
    chain = inline_pem(got["default"].tls_certificate.certificate_chain)
    assert "BEGIN CERTIFICATE" in chain
    assert chain == inline_pem(current["default"].tls_certificate.certificate_chain), "not the current certificate"
