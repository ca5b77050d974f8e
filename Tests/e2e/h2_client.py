"""A raw HTTP/2 client (the `h2` package) over a Unix socket, for the gRPC protocol rules that
grpcio never breaks: wrong content types, unknown methods, compression, resets, GOAWAY."""

import socket
import struct
import time

import h2.config
import h2.connection
import h2.events

SDS_PATH = "/envoy.service.secret.v3.SecretDiscoveryService/"


def grpc_frame(message: bytes, compressed: bool = False, declared_length: int | None = None) -> bytes:
    """gRPC's length prefix: a flag byte and a 4-byte big-endian length, then the message."""
    length = len(message) if declared_length is None else declared_length
    return struct.pack(">BI", 1 if compressed else 0, length) + message


def grpc_messages(data: bytes) -> list[bytes]:
    """The complete gRPC messages in a stream's DATA so far; a message still arriving is not one."""
    messages = []
    while len(data) >= 5:
        _, length = struct.unpack(">BI", data[:5])
        if len(data) < 5 + length:
            break
        messages.append(data[5:5 + length])
        data = data[5 + length:]
    return messages


class StreamResult:
    def __init__(self):
        self.headers: dict[str, str] = {}
        self.data = b""
        self.trailers: dict[str, str] = {}
        self.reset_code: int | None = None
        self.ended = False

    @property
    def grpc_status(self) -> int | None:
        # Trailers-only responses carry the status in the only header block.
        value = self.trailers.get("grpc-status", self.headers.get("grpc-status"))
        return None if value is None else int(value)

    @property
    def grpc_message(self) -> str:
        return self.trailers.get("grpc-message", self.headers.get("grpc-message", ""))


class H2Connection:
    def __init__(self, path: str, open_window: bool = True):
        # open_window=False: a client that obeys flow control but never sends WINDOW_UPDATE, so
        # the server may send it no more than the initial 65,535 bytes.
        self.open_window = open_window
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.local_settings.max_concurrent_streams = 10000
        self.conn.initiate_connection()
        self.streams: dict[int, StreamResult] = {}
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.closed = False
        self.write_closed = False
        self.settings_received = False
        self.flush()
        # The server's stream limit applies once its SETTINGS are acknowledged (until then NIO
        # allows 100 streams): read them first, as Envoy does.
        assert self.pump(lambda: self.settings_received), "no SETTINGS from the server"

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.write_closed:
            # pump() leaves the socket with what was left of its deadline, maybe a millisecond.
            self.sock.settimeout(30)
            try:
                self.sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                # The server closed the connection; what it sent before is still to be read.
                self.write_closed = True

    def start(self, method: str, content_type: str = "application/grpc", http_method: str = "POST",
              extra: list[tuple[str, str]] = (), end_stream: bool = False, path: str | None = None) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        headers = [(":method", http_method), (":scheme", "http"), (":path", path or SDS_PATH + method),
                   (":authority", "localhost"), ("content-type", content_type), ("te", "trailers"), *extra]
        self.conn.send_headers(stream_id, headers, end_stream=end_stream)
        self.streams[stream_id] = StreamResult()
        self.flush()
        return stream_id

    def send(self, stream_id: int, data: bytes, end_stream: bool = False, flush: bool = True) -> None:
        # Waits for the server's WINDOW_UPDATEs when the flow-control window is short.
        while data:
            if self.conn.local_flow_control_window(stream_id) <= 0:
                self.flush()
            assert self.pump(lambda: self.conn.local_flow_control_window(stream_id) > 0), \
                f"flow control window stuck (connection closed: {self.closed}, GOAWAY: {self.goaway})"
            size = min(len(data), self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
            chunk, data = data[:size], data[size:]
            self.conn.send_data(stream_id, chunk, end_stream=end_stream and not data)
            if flush:
                self.flush()


    def reset(self, stream_id: int, code: int = 8, flush: bool = True) -> None:
        self.conn.reset_stream(stream_id, error_code=code)
        if flush:
            self.flush()

    def request_and_reset(self, stream_id: int | None, method: str, message: bytes) -> int:
        """A request message and RST_STREAM(CANCEL) in one write, so that the server reads them
        together: it handles the request while the stream is already closed on the wire. A new
        stream (with its HEADERS) if `stream_id` is None."""
        if stream_id is None:
            stream_id = self.conn.get_next_available_stream_id()
            headers = [(":method", "POST"), (":scheme", "http"), (":path", SDS_PATH + method),
                       (":authority", "localhost"), ("content-type", "application/grpc"), ("te", "trailers")]
            self.conn.send_headers(stream_id, headers)
            self.streams[stream_id] = StreamResult()
        frame = grpc_frame(message)
        if self.conn.local_flow_control_window(stream_id) < len(frame):
            self.flush()
            assert self.pump(lambda: self.conn.local_flow_control_window(stream_id) >= len(frame)), \
                f"flow control window stuck (connection closed: {self.closed}, GOAWAY: {self.goaway})"
        self.conn.send_data(stream_id, frame)
        self.conn.reset_stream(stream_id, error_code=8)
        self.flush()
        return stream_id

    def pump(self, until, timeout: float = 15.0) -> bool:
        """Reads and handles frames until `until()` is true (returns True) or the deadline."""
        deadline = time.monotonic() + timeout
        while not until():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closed:
                return until()
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return until()
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
                return until()
            for event in self.conn.receive_data(chunk):
                self._handle(event)
            self.flush()
        return True

    def _handle(self, event) -> None:
        if isinstance(event, h2.events.ResponseReceived) and event.stream_id in self.streams:
            self.streams[event.stream_id].headers = dict(event.headers)
            if event.stream_ended:
                self.streams[event.stream_id].ended = True
        elif isinstance(event, h2.events.DataReceived):
            if event.stream_id in self.streams:
                self.streams[event.stream_id].data += event.data
            if self.open_window:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived) and event.stream_id in self.streams:
            self.streams[event.stream_id].trailers = dict(event.headers)
        elif isinstance(event, h2.events.StreamEnded) and event.stream_id in self.streams:
            self.streams[event.stream_id].ended = True
        elif isinstance(event, h2.events.StreamReset):
            if event.stream_id in self.streams:
                self.streams[event.stream_id].reset_code = int(event.error_code)
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.settings_received = True
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event

    def wait_ended(self, stream_id: int, timeout: float = 15.0) -> StreamResult:
        result = self.streams[stream_id]
        assert self.pump(lambda: result.ended or result.reset_code is not None, timeout), \
            f"stream {stream_id} did not end within {timeout}s"
        return result

    def wait_messages(self, stream_id: int, count: int, timeout: float = 15.0) -> list[bytes]:
        result = self.streams[stream_id]
        assert self.pump(lambda: len(grpc_messages(result.data)) >= count or result.ended, timeout), \
            f"stream {stream_id} got {len(grpc_messages(result.data))} of {count} messages"
        return grpc_messages(result.data)

    def close(self) -> None:
        self.sock.close()
