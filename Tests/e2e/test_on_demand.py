"""On-demand certificates per SNI: an edge Envoy whose server certificate is chosen by Envoy's
on-demand certificate selector asks sds-agent (DeltaSecrets) for a secret named after each SNI.
Allowed names get a certificate minted by the agent's CA with the SNI as its DNS SAN, chaining to
ROOTCA; a name not allowed, or over the cap, fails the handshake at once; a rotation reaches new
handshakes. Every handshake is a fresh TLS connection (resumption is off in the listener anyway).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

from daemon_support import poll
from test_daemon import start  # noqa: F401 - `start` is a fixture

ALLOWED = ("*.internal.example", "api.example.test")


def handshake(port: int, sni: str, roots) -> tuple[str, float]:
    """GET over a new TLS connection with `sni`: ("ok <serial> <sans>", seconds) or (error, seconds)."""
    context = ssl.create_default_context(cafile=str(roots))
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname=sni) as tls:
                cert = tls.getpeercert()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.sock = tls
                conn.request("GET", "/", headers={"Host": sni})
                response = conn.getresponse()
                response.read()
                sans = ",".join(v for k, v in cert.get("subjectAltName", ()) if k == "DNS")
                assert response.getheader("x-requested-sni") == sni
                return f"ok {cert['serialNumber'].lower().lstrip('0')} {sans}", time.monotonic() - t0
    except (OSError, ssl.SSLError) as e:
        return f"{type(e).__name__}: {e}", time.monotonic() - t0


def test_on_demand_certificates_per_sni(start, start_envoy, tmp_path):
    args = [a for pattern in ALLOWED for a in ("--on-demand-names", pattern)]
    agent = start("agent", *args, "--on-demand-ttl", "10s", "--on-demand-max-names", "20",
                  "--on-demand-rate", "6000/m", "--caller-stream-rate", "2000/s")
    edge = start_envoy("on-demand", agent.socket_path)
    roots = tmp_path / "rootca.pem"
    roots.write_text(agent.fetch("ROOTCA")[0][0]["pem"])

    # Three SNIs, three certificates, each with the SNI as its DNS SAN, verified against ROOTCA
    # (ssl checks the chain and the host name).
    serials = {}
    for sni in ("a.internal.example", "b.internal.example", "api.example.test"):
        result, took = handshake(edge.listen_port, sni, roots)
        assert result.startswith("ok "), f"{sni}: {result}"
        _, serial, sans = result.split(" ")
        assert sans == sni, (sni, sans)
        serials[sni] = serial
        print(f"{sni}: first handshake {took * 1000:.0f} ms, serial {serial}")
    assert len(set(serials.values())) == 3

    # Not allowed (two labels under the wildcard, another domain): refused at once, nothing minted.
    for sni in ("x.y.internal.example", "evil.example"):
        result, took = handshake(edge.listen_port, sni, roots)
        assert not result.startswith("ok"), f"{sni} was served: {result}"
        assert took < 1.0, f"{sni}: the refusal took {took:.2f}s"
        print(f"{sni}: refused in {took * 1000:.0f} ms ({result})")
    debug = agent.admin.json("/debug/secrets")
    minted = {entry["name"] for entry in debug if entry.get("kind") == "on_demand"}
    assert minted == set(serials), minted

    # A rotation (10 s lifetime, renewed at half) reaches new handshakes.
    def rotated():
        result, _ = handshake(edge.listen_port, "a.internal.example", roots)
        return result.startswith("ok ") and result.split(" ")[1] != serials["a.internal.example"]

    poll(rotated, 20, interval=0.5, what="a rotated on-demand certificate in a new handshake")

    # A burst of 500 distinct allowed names from 25 clients at once: the agent never holds more
    # than the cap (20; a name whose streams are gone makes room), a name beyond it fails at once,
    # and the agent keeps serving.
    names = [f"n{i}.internal.example" for i in range(500)]
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=25) as pool:
        results = list(pool.map(lambda n: handshake(edge.listen_port, n, roots), names))
    served = [n for n, (r, _) in zip(names, results) if r.startswith("ok ")]
    slowest_refusal = max(t for r, t in results if not r.startswith("ok "))
    print(f"burst: {len(served)} of 500 served in {time.monotonic() - t0:.1f}s; slowest refusal {slowest_refusal:.2f}s")
    held = [entry for entry in agent.admin.json("/debug/secrets") if entry.get("kind") == "on_demand"]
    assert len(held) <= 20, f"{len(held)} names held beyond the cap"
    assert len(served) < 500, "no name was refused over the cap"
    assert slowest_refusal < 2.0, f"a refusal took {slowest_refusal:.2f}s"
    metrics = agent.admin.get("/metrics")
    assert 'sds_agent_on_demand_refused_total{reason="over_cap"}' in metrics
    holding = [entry["name"] for entry in held if entry["holders"] > 0 and entry["serial"]]
    assert holding, held
    result, _ = handshake(edge.listen_port, holding[0], roots)
    assert result.startswith("ok "), f"the agent stopped serving a held name after the burst: {result}"
    assert agent.fetch("default")[0][0]["serial"], "the agent stopped serving its own certificate"
    assert agent.alive() and edge.alive()


def test_refusals_on_both_protocols(start):
    """What a client sees for a refused name: removed on a delta stream, a body-less resource with
    a short TTL on a state-of-the-world stream (Envoy drops the name when it expires)."""
    from envoy.service.discovery.v3 import discovery_pb2

    from daemon_support import sds_request, sds_stub
    from test_delta import DeltaCall, delta_request

    agent = start("agent", "--on-demand-names", "*.internal.example")
    delta = DeltaCall(agent.socket_path)
    delta.send(delta_request(subscribe=["evil.example"]))
    removed = delta.response()
    assert list(removed.removed_resources) == ["evil.example"] and not removed.resources
    delta.send(delta_request(subscribe=["ok.internal.example"]))
    minted = delta.response()
    assert [r.name for r in minted.resources] == ["ok.internal.example"]
    delta.send(None)

    channel, stub = sds_stub(agent.socket_path)
    try:
        responses = stub.StreamSecrets(iter([sds_request(["evil.example", "default"])]), timeout=10)
        first = next(responses)
        by_type = {any_.type_url: any_ for any_ in first.resources}
        heartbeat = discovery_pb2.Resource()
        assert by_type["type.googleapis.com/envoy.service.discovery.v3.Resource"].Unpack(heartbeat)
        assert heartbeat.name == "evil.example" and heartbeat.ttl.seconds == 1
        assert not heartbeat.HasField("resource")
        responses.cancel()
    finally:
        channel.close()


def test_a_refused_name_over_sotw_fails_the_handshake_after_the_ttl(start, processes, tmp_path, free_port):
    """The same edge Envoy subscribing state-of-the-world (`api_type: GRPC`): a refused name is
    answered with a body-less resource whose TTL is 1 s, and the handshake fails about then
    instead of hanging; an allowed name is still served."""
    from conftest import Envoy, envoy_bin, render_example

    agent = start("agent", "--on-demand-names", "*.internal.example")
    admin_port, port = free_port(), free_port()
    text = render_example("on-demand", SDS_SOCKET=agent.socket_path, ADMIN_PORT=admin_port, LISTEN_PORT=port)
    assert "api_type: DELTA_GRPC" in text
    config = tmp_path / "envoy-sotw.yaml"
    config.write_text(text.replace("api_type: DELTA_GRPC", "api_type: GRPC"))
    edge = processes.add(Envoy("envoy-sotw", [envoy_bin(), "-c", config, "--concurrency", "1", "--disable-hot-restart",
                                              "-l", "info"], tmp_path, admin_port, port))
    edge.wait_live()
    roots = tmp_path / "rootca.pem"
    roots.write_text(agent.fetch("ROOTCA")[0][0]["pem"])
    result, took = handshake(port, "a.internal.example", roots)
    assert result.startswith("ok "), result
    result, took = handshake(port, "evil.example", roots)
    print(f"\nSotW refusal: {result} after {took:.2f}s")
    assert not result.startswith("ok"), result
    assert took < 5.0, f"the handshake waited {took:.1f}s (the client gives up at 10 s)"


def test_prefetched_names_are_minted_before_any_handshake(start, processes, tmp_path, free_port):
    """`prefetch_secret_names`: Envoy subscribes to them at start; the agent mints them then, and
    the first handshake finds the certificate already there."""
    from conftest import Envoy, envoy_bin, render_example

    agent = start("agent", "--on-demand-names", "*.internal.example")
    admin_port, port = free_port(), free_port()
    text = render_example("on-demand", SDS_SOCKET=agent.socket_path, ADMIN_PORT=admin_port, LISTEN_PORT=port)
    anchor = "                certificate_mapper:\n"
    assert anchor in text
    text = text.replace(anchor, "                prefetch_secret_names: [pre.internal.example]\n" + anchor)
    config = tmp_path / "envoy-prefetch.yaml"
    config.write_text(text)
    edge = processes.add(Envoy("envoy-prefetch", [envoy_bin(), "-c", config, "--concurrency", "1",
                                                  "--disable-hot-restart", "-l", "info"], tmp_path, admin_port, port))
    edge.wait_live()

    def minted():
        entries = [e for e in agent.admin.json("/debug/secrets") if e.get("kind") == "on_demand"]
        return [e for e in entries if e["name"] == "pre.internal.example" and e["serial"]]

    (entry,) = poll(minted, 10, what="the prefetched name minted before any handshake")
    roots = tmp_path / "rootca.pem"
    roots.write_text(agent.fetch("ROOTCA")[0][0]["pem"])
    result, _ = handshake(port, "pre.internal.example", roots)
    assert result.startswith("ok ") and result.split(" ")[1] == entry["serial"].lstrip("0"), (result, entry)


def test_in_node_agent_mode_only_the_named_callers_get_on_demand_names(start):
    """Issue #21, class 2: an on-demand certificate is a server key; in node-agent mode a caller
    gets one only if --on-demand-callers names its identity (by default nobody), and anyone else
    is refused PERMISSION_DENIED naming the rule, with nothing minted."""
    import os

    import grpc

    from test_delta import DeltaCall, delta_request

    gateway = "spiffe://cluster.local/ns/edge/sa/gateway"
    rule = f"uid={os.getuid()},spiffe-id=spiffe://cluster.local/ns/web/sa/frontend"
    agent = start("agent", "--caller-identity", "peer", "--workload", rule, "--on-demand-names", "*.internal.example")
    call = DeltaCall(agent.socket_path)
    call.send(delta_request(subscribe=["a.internal.example"]))
    error = call.next_error(10)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, (error.code(), error.details())
    assert "on-demand-callers" in error.details() and "sa/frontend" in error.details(), error.details()
    assert not [e for e in agent.admin.json("/debug/secrets") if e.get("kind") == "on_demand"]

    # The caller the rule names gets its name.
    rule = f"uid={os.getuid()},spiffe-id={gateway}"
    named = start("named", "--caller-identity", "peer", "--workload", rule, "--on-demand-names", "*.internal.example",
                  "--on-demand-callers", gateway)
    call = DeltaCall(named.socket_path)
    call.send(delta_request(subscribe=["a.internal.example"]))
    assert [r.name for r in call.response().resources] == ["a.internal.example"]
    call.send(None)


def test_a_name_refused_over_the_rate_is_sent_once_the_rate_allows(start):
    """Issue #21, class 4: a refusal over --on-demand-rate is not forever; once the rate allows,
    the name is minted and sent on the same stream, without the client asking again."""
    from test_delta import DeltaCall, delta_request

    agent = start("agent", "--on-demand-names", "*.internal.example", "--on-demand-rate", "1/s")
    call = DeltaCall(agent.socket_path)
    call.send(delta_request(subscribe=["a.internal.example"]))
    minted = call.response()
    assert [r.name for r in minted.resources] == ["a.internal.example"], minted
    call.send(delta_request(nonce=minted.nonce, subscribe=["b.internal.example"]))
    refused = call.response()
    assert list(refused.removed_resources) == ["b.internal.example"] and not refused.resources, refused
    t0 = time.monotonic()
    call.send(delta_request(nonce=refused.nonce))
    later = call.response(timeout=5)
    took = time.monotonic() - t0
    assert [r.name for r in later.resources] == ["b.internal.example"], later
    print(f"re-admitted after {took:.2f}s")
    assert took < 2.5, f"re-admitted only after {took:.2f}s at 1/s"
    metrics = agent.admin.get("/metrics")
    assert 'sds_agent_on_demand_refused_total{reason="over_rate"} 1' in metrics
    call.send(None)


def test_a_reloaded_workload_idle_timeout_reaches_on_demand_certificates(start):
    """Issue #22: workload-idle-timeout is declared live, and on-demand certificates are among
    those who apply it: after a SIGHUP that shortens it, a name no stream holds is dropped after
    the new timeout, not the one the agent started with."""
    import signal

    from daemon_support import short_dir
    from test_delta import DeltaCall, delta_request

    d = short_dir()
    cfg = d / "config.yaml"
    cfg.write_text("on-demand-names: ['*.internal.example']\nworkload-idle-timeout: 1h\n")
    agent = start("agent", "--config", cfg, directory=d)

    def on_demand():
        return [e for e in agent.admin.json("/debug/secrets") if e.get("kind") == "on_demand"]

    call = DeltaCall(agent.socket_path)
    call.send(delta_request(subscribe=["a.internal.example"]))
    assert [r.name for r in call.response().resources] == ["a.internal.example"]
    call.send(None)
    poll(lambda: [e for e in on_demand() if e["name"] == "a.internal.example" and e["holders"] == 0], 10,
         what="the name held by no stream after the stream ended")

    cfg.write_text("on-demand-names: ['*.internal.example']\nworkload-idle-timeout: 2s\n")
    n = len(agent.log_lines())
    agent.signal(signal.SIGHUP)
    agent.wait_log("reloaded configuration", 10, start=n)
    t0 = time.monotonic()
    agent.wait_log("dropped an idle on-demand certificate", 15, start=n)
    print(f"dropped {time.monotonic() - t0:.1f}s after the reload")
    assert not on_demand(), on_demand()
    assert agent.alive()
