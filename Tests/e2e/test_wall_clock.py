"""Time that cannot fool the agent: its wall clock jumps three hours ahead (libfaketime, as after
a suspend and resume or a clock step) while its monotonic clock does not. The certificate it
holds has expired by its own clock: from that moment it is never served again, the periodic
wall-clock check renews it, and the new one is pushed on the open stream.

libfaketime's preload hides the process's arguments from the Swift runtime here, so the agent is
configured through its environment (SDS_AGENT_*), as systemd units may do too.
"""

from __future__ import annotations

import glob
import time
from datetime import datetime, timedelta, timezone

import grpc

from conftest import Agent, _free_port, agent_bin
from daemon_support import SdsStream, clean_env, fetch_secrets, leaf_of, serial_hex, short_dir, wait_admin

SHIFT = timedelta(hours=3)


def libfaketime() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    assert found, "libfaketime is missing: apt-get install faketime (.ci/run installs it)"
    return found[0]


def test_a_wall_clock_step_never_serves_an_expired_certificate(processes):
    d = short_dir()
    processes.dirs.append(d)
    offset = d / "offset"
    offset.write_text("+0\n")
    socket_path = d / "sds.sock"
    admin = f"127.0.0.1:{_free_port()}"
    env = clean_env(
        LD_PRELOAD=libfaketime(), FAKETIME_TIMESTAMP_FILE=offset, FAKETIME_NO_CACHE="1", DONT_FAKE_MONOTONIC="1",
        SDS_AGENT_SOCKET=socket_path, SDS_AGENT_STATE_DIR=d / "state", SDS_AGENT_CERT_TTL="1h",
        SDS_AGENT_ADMIN=admin, SDS_AGENT_LOG_LEVEL="debug")
    agent = processes.add(Agent("agent", [agent_bin(), "run"], d, socket_path, env=env, admin=admin))
    agent.wait_serving()
    wait_admin(agent.admin)
    stream = SdsStream(socket_path, names=("default",))
    first = leaf_of(stream.first_response_acked())
    assert first.not_valid_after_utc - first.not_valid_before_utc < timedelta(hours=1, minutes=1)

    offset.write_text("+3h\n")
    shifted_at = time.monotonic()
    # From now on every answer is a certificate valid at the agent's new time, or none at all.
    refused = 0
    while True:
        assert time.monotonic() - shifted_at < 60, "the agent did not renew within 60 s of the clock step"
        try:
            leaf = leaf_of(fetch_secrets(socket_path, names=("default",)))
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNAVAILABLE, (e.code(), e.details())
            refused += 1
            time.sleep(0.5)
            continue
        assert leaf.serial_number != first.serial_number, "the expired certificate was served after the clock step"
        assert leaf.not_valid_after_utc > datetime.now(timezone.utc) + SHIFT - timedelta(minutes=1)
        break
    renewed_after = time.monotonic() - shifted_at
    pushed = stream.wait_serial(serial_hex(leaf), timeout=10)
    assert leaf_of(pushed).serial_number == leaf.serial_number
    assert any("certificate expired before it could be renewed" in line for line in agent.log_lines()), agent.tail()
    print(f"\nrenewed {renewed_after:.1f}s after the wall clock step; {refused} fetches refused meanwhile")
