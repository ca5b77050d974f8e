"""Baseline SDS server for sds-agent-bench: Python grpcio (gRPC C-core) on a Unix socket, answering
with pre-serialized DiscoveryResponses (the agent's own answers, one file per resource name),
after parsing each request like a real server would.

--server aio (asyncio, grpc.aio) serves FetchSecrets and StreamSecrets. A stream's first request
is answered like FetchSecrets, then the stream stays open, its further requests (ACKs) read and
answered with nothing, as an SDS server does between rotations. asyncio holds thousands of open
streams without a thread each: the streams phase uses this server.

--server sync (a thread pool, grpc.server) serves FetchSecrets only, for the FetchSecrets phase:
measured with sds-agent-bench next to the aio server, it answered about 10% more calls/s at
concurrency 1 and as many or more at 8 and 32.

Usage: baseline_sds_server.py --server aio|sync --socket PATH --response NAME=FILE [--response NAME=FILE ...]
"""
import argparse
import asyncio
import os
import signal
import threading
from concurrent import futures
from typing import Callable

import grpc
from envoy.service.discovery.v3 import discovery_pb2

SERVICE = "envoy.service.secret.v3.SecretDiscoveryService"
OPTIONS = [
    # The agent allows 4096 streams per HTTP/2 connection; the baseline must not refuse what it accepts.
    ("grpc.max_concurrent_streams", 4096),
    # C-core queues the calls the application has not asked for yet and, past 3000 of them by
    # default, rejects new ones. The aio server asks for one call at a time, so a burst of
    # thousands of streams overflowed the queue: hundreds of streams never had an answer, and the
    # bench's client saw no error for them either (at 20,000 it sent GOAWAY ENHANCE_YOUR_CALM).
    ("grpc.server.max_pending_requests", 1_000_000),
    ("grpc.server.max_pending_requests_hard_limit", 1_000_000),
]
Answer = Callable[[discovery_pb2.DiscoveryRequest], bytes]


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", choices=["aio", "sync"], default="aio")
    parser.add_argument("--socket", required=True)
    parser.add_argument(
        "--response", action="append", required=True, metavar="NAME=FILE",
        help="the serialized DiscoveryResponse for resource NAME; the first one also answers other names",
    )
    return parser.parse_args()


def load_answer(arguments: list[str]) -> Answer:
    responses: dict[str, bytes] = {}
    for argument in arguments:
        name, _, path = argument.partition("=")
        with open(path, "rb") as file:
            responses[name] = file.read()
    fallback = next(iter(responses.values()))

    def answer(request: discovery_pb2.DiscoveryRequest) -> bytes:
        names = request.resource_names
        return responses.get(names[0], fallback) if names else fallback

    return answer


def handlers(methods: dict[str, grpc.RpcMethodHandler]) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(SERVICE, methods)


def aio_handlers(answer: Answer) -> grpc.GenericRpcHandler:
    async def fetch(request: discovery_pb2.DiscoveryRequest, context) -> bytes:
        return answer(request)

    async def stream(requests, context):
        first = True
        async for request in requests:
            if first:
                first = False
                yield answer(request)

    parse = discovery_pb2.DiscoveryRequest.FromString
    return handlers({
        "FetchSecrets": grpc.unary_unary_rpc_method_handler(fetch, parse, None),
        "StreamSecrets": grpc.stream_stream_rpc_method_handler(stream, parse, None),
    })


def sync_handlers(answer: Answer) -> grpc.GenericRpcHandler:
    def fetch(request: discovery_pb2.DiscoveryRequest, context) -> bytes:
        return answer(request)

    parse = discovery_pb2.DiscoveryRequest.FromString
    return handlers({"FetchSecrets": grpc.unary_unary_rpc_method_handler(fetch, parse, None)})


def listen(server, socket: str) -> None:
    if os.path.exists(socket):
        os.unlink(socket)
    server.add_insecure_port(f"unix:{socket}")


async def serve_aio(arguments: argparse.Namespace, answer: Answer) -> None:
    server = grpc.aio.server(options=OPTIONS)
    server.add_generic_rpc_handlers((aio_handlers(answer),))
    listen(server, arguments.socket)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print("serving", flush=True)
    await stop.wait()
    await server.stop(0)


def serve_sync(arguments: argparse.Namespace, answer: Answer) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2), options=OPTIONS)
    server.add_generic_rpc_handlers((sync_handlers(answer),))
    listen(server, arguments.socket)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    print("serving", flush=True)
    stop.wait()  # signal handlers run on this, the main, thread
    server.stop(0).wait()


def main() -> None:
    arguments = parse_arguments()
    # A parent's worker thread may have started us with these blocked (the mask is inherited):
    # unblock them, or SIGTERM would stay pending forever.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    answer = load_answer(arguments.response)
    if arguments.server == "aio":
        asyncio.run(serve_aio(arguments, answer))
    else:
        serve_sync(arguments, answer)


if __name__ == "__main__":
    main()
