"""Baseline SPIFFE Workload API server for sds-agent-bench: Python grpcio (gRPC C-core, grpc.aio)
on a Unix socket, answering FetchX509SVID with a pre-serialized X509SVIDResponse (the agent's own
first answer) after checking the call's `workload.spiffe.io: true` header and reading its request,
like a real server would. Each stream then stays open; SIGUSR1 pushes the response again on every
open stream, as a rotation does (the bench times that fan-out beside the agent's).

Usage: baseline_workload_api_server.py --socket PATH --response FILE
"""
import argparse
import asyncio
import os
import signal

import grpc

SERVICE = "SpiffeWorkloadAPI"
OPTIONS = [
    # As baseline_sds_server.py: as many streams per connection as the agent allows, and no
    # limit on calls the application has not picked up yet.
    ("grpc.max_concurrent_streams", 4096),
    ("grpc.server.max_pending_requests", 1_000_000),
    ("grpc.server.max_pending_requests_hard_limit", 1_000_000),
]


class Pushes:
    """A future per push: every open stream waits on the current one; a push resolves it and
    puts the next one in its place before any waiter runs."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.next = loop.create_future()

    def push(self) -> None:
        done, self.next = self.next, self.loop.create_future()
        done.set_result(None)


def handler(response: bytes, pushes: Pushes) -> grpc.GenericRpcHandler:
    async def fetch_x509_svid(request: bytes, context):
        if ("workload.spiffe.io", "true") not in tuple(context.invocation_metadata()):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "security header missing from request")
        yield response
        while True:
            # Shielded: a closed stream's task is cancelled, and must not cancel the shared future.
            await asyncio.shield(pushes.next)
            yield response

    return grpc.method_handlers_generic_handler(SERVICE, {
        "FetchX509SVID": grpc.unary_stream_rpc_method_handler(fetch_x509_svid, None, None),
    })


async def serve(arguments: argparse.Namespace, response: bytes) -> None:
    loop = asyncio.get_running_loop()
    pushes = Pushes(loop)
    server = grpc.aio.server(options=OPTIONS)
    server.add_generic_rpc_handlers((handler(response, pushes),))
    if os.path.exists(arguments.socket):
        os.unlink(arguments.socket)
    server.add_insecure_port(f"unix:{arguments.socket}")
    await server.start()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, pushes.push)
    print("serving", flush=True)
    await stop.wait()
    await server.stop(0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--response", required=True, help="the serialized X509SVIDResponse")
    arguments = parser.parse_args()
    # A parent's worker thread may have started us with these blocked (the mask is inherited).
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGUSR1})
    with open(arguments.response, "rb") as file:
        response = file.read()
    asyncio.run(serve(arguments, response))


if __name__ == "__main__":
    main()
