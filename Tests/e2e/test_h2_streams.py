"""The SDS socket's HTTP/2 under streams that are reset as they are answered, and under a client
that never opens its flow-control window (issue #21, classes 3 and 9), with the raw HTTP/2
client: a reset stream is that stream's business, never its connection's; a stream that cannot
be written holds only its newest response, and a connection that holds too much unsent is closed.

Pushes come from forced rotations (the admin endpoint's POST /rotate)."""

import os
import random
import time

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2

from conftest import SECRET_TYPE_URL, Agent
from daemon_support import agent_argv, clean_env, poll, short_dir, wait_admin
from h2_client import H2Connection, grpc_frame, grpc_messages

# How long the memory-bounded run lasts (the full run is 300 s).
FLOW_CONTROL_SECONDS = float(os.environ.get("SDS_FLOW_CONTROL_SECONDS", "40"))
# What the agent may grow above its RSS with the streams open, for the whole run (README, Limits).
FLOW_CONTROL_RSS_BOUND_MIB = 16
ENHANCE_YOUR_CALM = 11


def sds_request(*names: str, nonce: str = "", version: str = "") -> bytes:
    return discovery_pb2.DiscoveryRequest(
        node=base_pb2.Node(id="h2-streams"), type_url=SECRET_TYPE_URL, resource_names=list(names),
        response_nonce=nonce, version_info=version,
    ).SerializeToString()


def last_response(connection: H2Connection, stream: int) -> discovery_pb2.DiscoveryResponse:
    return discovery_pb2.DiscoveryResponse.FromString(grpc_messages(connection.streams[stream].data)[-1])


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture
def agent(processes):
    directory = short_dir("sdsh2-")
    processes.dirs.append(directory)
    socket_path = directory / "sds.sock"
    admin = f"unix:{directory / 'admin.sock'}"
    argv = agent_argv(socket_path, directory / "state", admin=admin, cert_ttl="1h", log_level="debug")
    agent = processes.add(Agent("agent", argv, directory, socket_path, env=clean_env(), admin=admin))
    agent.wait_serving()
    wait_admin(agent.admin)
    return agent


def rotate(agent) -> None:
    status, body = agent.admin.rotate()
    assert status == 200, body


def open_streams(connection: H2Connection, count: int, name: str = "default") -> list[int]:
    streams = []
    for _ in range(count):
        stream = connection.start("StreamSecrets")
        connection.send(stream, grpc_frame(sds_request(name)), flush=False)
        streams.append(stream)
    connection.flush()
    return streams


def wait_all(connections_and_streams, count: int, timeout: float = 30.0) -> None:
    """Every stream has `count` messages; says which did not and how its connection fared."""
    deadline = time.monotonic() + timeout
    for connection, streams in connections_and_streams:
        def done():
            return all(len(grpc_messages(connection.streams[s].data)) >= count for s in streams)

        connection.pump(done, timeout=max(0.1, deadline - time.monotonic()))
        missing = [s for s in streams if len(grpc_messages(connection.streams[s].data)) < count]
        assert not missing, (
            f"{len(missing)} of {len(streams)} waiting streams lack response {count} "
            f"(connection closed: {connection.closed}, GOAWAY: {connection.goaway}; "
            f"stream {missing[0]}: {len(grpc_messages(connection.streams[missing[0]].data))} responses, "
            f"reset {connection.streams[missing[0]].reset_code})"
        )


def test_a_stream_reset_as_it_is_answered_leaves_its_connection_serving(agent):
    connection = H2Connection(str(agent.socket_path))
    try:
        [waiting] = open_streams(connection, 1)
        wait_all([(connection, [waiting])], 1)
        # A new stream whose request and RST_STREAM arrive together: the agent answers the
        # request on a stream that is already closed.
        connection.request_and_reset(None, "StreamSecrets", sds_request("default"))
        rotate(agent)
        wait_all([(connection, [waiting])], 2)
        assert connection.goaway is None and not connection.closed
    finally:
        connection.close()


def test_half_of_100_streams_reset_around_pushes_leave_the_other_half_served(agent):
    rng = random.Random(21)
    connection = H2Connection(str(agent.socket_path))
    try:
        streams = open_streams(connection, 100)
        wait_all([(connection, streams)], 1)
        rng.shuffle(streams)
        keepers, victims = streams[:50], streams[50:]
        rounds = 5
        for round_ in range(rounds):
            batch, victims = victims[:10], victims[10:]
            # Each victim re-subscribes (so that the agent answers it) and resets in the same
            # write: before the rotation, while the agent pushes, or right after the push.
            moments = [rng.choice(("before", "during", "after")) for _ in batch]

            def reset(moment):
                for victim, when in zip(batch, moments):
                    if when == moment:
                        nonce = last_response(connection, victim).nonce
                        connection.request_and_reset(victim, "StreamSecrets", sds_request("ROOTCA", nonce=nonce))

            reset("before")
            rotate(agent)
            reset("during")
            wait_all([(connection, keepers)], round_ + 2)
            reset("after")
            # A fresh stream reset with its first request, too.
            connection.request_and_reset(None, "StreamSecrets", sds_request("default"))
            print(f"round {round_ + 1}: resets {sorted(moments)}")
        connection.pump(lambda: connection.closed or connection.goaway is not None, timeout=1)
        assert connection.goaway is None and not connection.closed, connection.goaway
        rotate(agent)
        wait_all([(connection, keepers)], rounds + 2)
    finally:
        connection.close()


def test_5000_streams_over_4_connections_half_reset_at_once_leave_the_rest_served(agent):
    connections = [H2Connection(str(agent.socket_path)) for _ in range(4)]
    try:
        waiting = []
        for connection in connections:
            kept = []
            for index in range(1250):
                if index % 2:
                    connection.request_and_reset(None, "StreamSecrets", sds_request("default"))
                else:
                    stream = connection.start("StreamSecrets")
                    connection.send(stream, grpc_frame(sds_request("default")), flush=False)
                    kept.append(stream)
                assert not connection.closed, (
                    f"the agent closed connection {connections.index(connection) + 1} after {index + 1} streams "
                    f"(GOAWAY: {connection.goaway})")
            connection.flush()
            waiting.append((connection, kept))
        wait_all(waiting, 1, timeout=60)
        rotate(agent)
        wait_all(waiting, 2, timeout=60)
        for connection in connections:
            assert connection.goaway is None and not connection.closed, connection.goaway
    finally:
        for connection in connections:
            connection.close()


def test_a_thousand_streams_opened_and_closed_leave_the_agent_flat(agent):
    """1,000 streams, each answered once and then ended by the client, leave the agent's RSS
    where 200 such streams left it: nothing of a stream outlives it (measured on the agent's own
    process, so nothing else running moves the figure)."""
    connection = H2Connection(str(agent.socket_path))

    def cycle(count: int, batch: int = 50) -> None:
        for _ in range(count // batch):
            streams = open_streams(connection, batch)
            wait_all([(connection, streams)], 1)
            for stream in streams:
                connection.conn.end_stream(stream)
            connection.flush()
            for stream in streams:
                assert connection.wait_ended(stream).grpc_status == 0
        poll(lambda: agent.admin.metrics().value("sds_agent_streams_open") == 0, 10, what="no stream open")

    try:
        cycle(200)
        before_kib = rss_kib(agent.pid)
        cycle(1000)
        after_kib = rss_kib(agent.pid)
        metrics = agent.admin.metrics()
        print(f"1000 streams opened and closed: RSS {before_kib} KiB -> {after_kib} KiB "
              f"({after_kib - before_kib:+d} KiB)")
        assert metrics.value("sds_agent_streams_opened_total") == 1200
        assert metrics.value("sds_agent_streams_closed_total") == 1200
        assert connection.goaway is None and not connection.closed
        # A leak of even 8 KiB per stream would exceed this.
        assert after_kib - before_kib < 8 * 1024
    finally:
        connection.close()


def test_a_client_that_never_opens_its_window_cannot_grow_the_agent(agent):
    """1,000 streams on one connection whose receive window stays closed, each re-subscribing
    again and again, while the agent rotates every 2 s; a well-behaved client on another
    connection gets every push, and the agent's RSS stays within the bound."""
    stuck = H2Connection(str(agent.socket_path), open_window=False)
    good = H2Connection(str(agent.socket_path))
    try:
        [served] = open_streams(good, 1)
        wait_all([(good, [served])], 1)
        streams = open_streams(stuck, 1000)
        # The first responses fill the connection's 65,535-byte window; most never arrive.
        assert stuck.pump(lambda: sum(len(stuck.streams[s].data) for s in streams) >= 60000), \
            "the first responses did not fill the window"
        start_kib = rss_kib(agent.pid)
        peak_kib = start_kib
        nonce = 1
        names = ("default", "ROOTCA")
        pushes = 0
        started = time.monotonic()
        next_rotation = started
        while time.monotonic() - started < FLOW_CONTROL_SECONDS:
            if time.monotonic() >= next_rotation:
                rotate(agent)
                pushes += 1
                next_rotation += 2
                wait_all([(good, [served])], pushes + 1, timeout=10)
                response = last_response(good, served)
                good.send(served, grpc_frame(sds_request("default", nonce=response.nonce,
                                                         version=response.version_info)))
            # Re-subscribe every stream, naming the nonce the agent sent last (they count up
            # from 1 on each stream), so that each request is answered.
            frame = grpc_frame(sds_request(names[nonce % 2], nonce=str(nonce)))
            for stream in streams:
                stuck.send(stream, frame, flush=False)
            nonce += 1
            stuck.flush()
            stuck.pump(lambda: False, timeout=0.05)
            if stuck.closed or stuck.goaway is not None:
                break
            peak_kib = max(peak_kib, rss_kib(agent.pid))
            assert peak_kib - start_kib <= FLOW_CONTROL_RSS_BOUND_MIB * 1024, (
                f"the agent grew by {(peak_kib - start_kib) / 1024:.0f} MiB in "
                f"{time.monotonic() - started:.0f} s (bound {FLOW_CONTROL_RSS_BOUND_MIB} MiB)")
        print(f"flow control: {time.monotonic() - started:.0f} s, {pushes} rotations, "
              f"{(nonce - 1) * len(streams)} re-subscriptions; RSS {start_kib / 1024:.1f} MiB -> "
              f"peak {peak_kib / 1024:.1f} MiB (+{(peak_kib - start_kib) / 1024:.1f}); "
              f"stuck connection closed: {stuck.closed}, GOAWAY {stuck.goaway}")
        assert pushes >= FLOW_CONTROL_SECONDS / 2 - 1
        rotate(agent)
        wait_all([(good, [served])], pushes + 2, timeout=10)
        assert good.goaway is None and not good.closed
    finally:
        stuck.close()
        good.close()


def test_a_connection_that_holds_too_much_unsent_is_closed_and_the_others_are_served(agent):
    """DeltaSecrets responses carry only changes, so a stream that cannot be written holds each
    (up to 16); 2,000 such streams with the window closed pass the connection's cap of 16 MiB
    unsent within a few rotations and the connection is closed. Another is served meanwhile."""
    stuck = H2Connection(str(agent.socket_path), open_window=False)
    good = H2Connection(str(agent.socket_path))
    try:
        [served] = open_streams(good, 1)
        wait_all([(good, [served])], 1)
        subscribe = grpc_frame(discovery_pb2.DeltaDiscoveryRequest(
            node=base_pb2.Node(id="h2-streams"), type_url=SECRET_TYPE_URL,
            resource_names_subscribe=["default", "ROOTCA"]).SerializeToString())
        for _ in range(2000):
            stream = stuck.start("DeltaSecrets")
            stuck.send(stream, subscribe, flush=False)
        stuck.flush()
        rotations = 0
        started = time.monotonic()
        while rotations < 30 and not stuck.closed and stuck.goaway is None:
            rotate(agent)
            rotations += 1
            stuck.pump(lambda: stuck.closed or stuck.goaway is not None, timeout=0.5)
        stuck.pump(lambda: stuck.closed, timeout=15)
        print(f"unsent cap: {rotations} rotations, {time.monotonic() - started:.1f} s; "
              f"closed: {stuck.closed}, GOAWAY {stuck.goaway}")
        assert stuck.goaway is not None and stuck.goaway.error_code == ENHANCE_YOUR_CALM, (
            f"a connection holding 2,000 unwritable delta streams through {rotations} rotations got "
            f"GOAWAY {stuck.goaway} (closed: {stuck.closed})")
        assert stuck.closed
        agent.wait_log(lambda line: "closing an SDS connection whose client does not take its responses" in line,
                       timeout=5)
        wait_all([(good, [served])], rotations + 1, timeout=15)
        assert good.goaway is None and not good.closed
    finally:
        stuck.close()
        good.close()



def test_a_delta_stream_that_cannot_take_its_responses_holds_16_then_is_reset(agent):
    """A DeltaSecrets stream whose client never opens its window holds the changes it cannot
    send, up to 16 responses; with a 17th it is reset (Envoy would resubscribe), and its
    connection goes on."""
    stuck = H2Connection(str(agent.socket_path), open_window=False)
    try:
        # Fill the connection's window with StreamSecrets responses first, so that the delta
        # streams' responses all wait.
        filler = open_streams(stuck, 60)
        assert stuck.pump(lambda: sum(len(stuck.streams[s].data) for s in filler) >= 60000), \
            "the first responses did not fill the window"
        subscribe = grpc_frame(discovery_pb2.DeltaDiscoveryRequest(
            node=base_pb2.Node(id="h2-streams"), type_url=SECRET_TYPE_URL,
            resource_names_subscribe=["default"]).SerializeToString())
        deltas = []
        for _ in range(10):
            stream = stuck.start("DeltaSecrets")
            stuck.send(stream, subscribe)
            deltas.append(stream)
        rotations = 0
        while rotations < 30 and not all(stuck.streams[s].reset_code is not None for s in deltas):
            rotate(agent)
            rotations += 1
            stuck.pump(lambda: all(stuck.streams[s].reset_code is not None for s in deltas), timeout=0.3)
        print(f"delta streams after {rotations} rotations, reset codes: "
              f"{[stuck.streams[s].reset_code for s in deltas]}")
        # The first response waits in HTTP/2 for the window and the stream holds the next 16;
        # the 17th it would hold (the 17th rotation's) resets it.
        assert rotations == 17, rotations
        assert all(stuck.streams[s].reset_code == 8 for s in deltas)
        assert stuck.goaway is None and not stuck.closed
        assert all(stuck.streams[s].reset_code is None for s in filler)
    finally:
        stuck.close()
