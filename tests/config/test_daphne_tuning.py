"""Daphne as the ASGI module tunes it: bodies reach the application unparsed, and an answer's bytes are sent when the
application sends them (what the socket does not take goes Twisted's way). The sending is checked on Twisted's own
descriptor and request classes (still Daphne's where HTTP/2 is on), then end to end on a real Daphne process, whose
connections are httptools' (`config.daphne_http`, tested on its own in test_daphne_http.py)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from twisted.internet.abstract import FileDescriptor
from twisted.internet.address import IPv4Address
from twisted.web.http import HTTPChannel

from billing.groups import group_default, price_save
from billing.models import UsageLog
from config.daphne_tuning import send_now, tune_daphne
from relay.realtime.close_frames import close_frame
from relay.upstreams import upstream_save
from tests.fakes.openai_upstream import FakeOpenAI
from tests.processes import ServerProcesses
from tests.support import settled

UPSTREAM_KEY = "sk-upstream-daphne"


class Reactor:
    """What a descriptor asks of its reactor, recorded."""

    def __init__(self) -> None:
        self.writers: set[FileDescriptor] = set()

    def addWriter(self, descriptor: FileDescriptor) -> None:  # noqa: N802 (Twisted's names)
        self.writers.add(descriptor)

    def removeWriter(self, descriptor: FileDescriptor) -> None:  # noqa: N802
        self.writers.discard(descriptor)

    def addReader(self, descriptor: FileDescriptor) -> None:  # noqa: N802
        pass

    def removeReader(self, descriptor: FileDescriptor) -> None:  # noqa: N802
        pass


class Socket(FileDescriptor):
    """A connected descriptor whose socket takes `room` bytes per send, or fails."""

    def __init__(self, room: int = 1 << 30, fails: bool = False) -> None:
        super().__init__(reactor=Reactor())
        self.connected = True
        self.room, self.fails, self.sent = room, fails, b""
        self.startWriting = lambda: None  # as the tuned request holds it while the application's message is written

    def writeSomeData(self, data: bytes) -> int | BaseException:  # noqa: N802
        if self.fails:
            return ConnectionResetError()
        taken = bytes(data[:self.room])
        self.sent += taken
        return len(taken)

    def release(self) -> None:
        del self.startWriting


def test_what_the_socket_takes_is_sent_at_once_and_nothing_waits_on_the_reactor():
    sock = Socket()
    sock.writeSequence([b"HTTP/1.1 200 OK\r\n", b"\r\n"])
    sock.write(b"body")
    sock.release()
    send_now(sock)
    assert sock.sent == b"HTTP/1.1 200 OK\r\n\r\nbody"
    assert sock.reactor.writers == set()


def test_what_the_socket_does_not_take_waits_for_the_reactor_in_order():
    sock = Socket(room=5)
    sock.write(b"0123456789")
    sock.release()
    send_now(sock)
    assert sock.sent == b"01234" and sock.reactor.writers == {sock}
    sock.room = 100
    sock.write(b"abc")  # written while the rest waits: after it
    sock.doWrite()  # the reactor, once the socket is writable
    assert sock.sent == b"0123456789abc" and sock.reactor.writers == set()


def test_a_failed_send_is_left_to_the_reactor_which_closes_the_connection():
    sock = Socket(fails=True)
    sock.write(b"data")
    sock.release()
    send_now(sock)
    assert sock.reactor.writers == {sock}  # its doWrite meets the error again and the reactor disconnects
    assert isinstance(sock.doWrite(), ConnectionResetError)


def test_a_connection_being_closed_is_left_to_the_reactor():
    sock = Socket()
    sock.write(b"last")
    sock.loseConnection()
    sock.release()
    send_now(sock)
    assert sock.sent == b"" and sock.reactor.writers == {sock}  # Twisted sends, then closes


# ---- a real Daphne process --------------------------------------------------------------------------------------


@pytest.fixture
def daphne(transactional_db):
    with FakeOpenAI(api_key=UPSTREAM_KEY) as fake, ServerProcesses() as processes:
        price_save(model="gpt-4o", model_ratio=1, completion_ratio=1)
        upstream_save(name="fake", type="openai", base_url=fake.url, keys=UPSTREAM_KEY, served_models=["gpt-4o"],
                      groups=[group_default().name])
        url, _proc = processes.start(server="daphne")
        yield fake, int(url.rsplit(":", 1)[1])


def _request(key: str, body: bytes, *, content_type: str = "application/json", path: str = "/v1/chat/completions",
             close: bool = False) -> bytes:
    connection = "Connection: close\r\n" if close else ""
    return (f"POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{connection}\r\n").encode() + body


def _read_answer(conn: socket.socket, buffered: bytearray) -> tuple[bytes, dict[str, str], bytes]:
    """One HTTP/1.1 answer (Content-Length or chunked) off a keep-alive connection."""
    while b"\r\n\r\n" not in buffered:
        buffered += _recv(conn)
    head, _, rest = bytes(buffered).partition(b"\r\n\r\n")
    buffered[:] = rest
    status, *lines = head.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    if "content-length" in headers:
        size = int(headers["content-length"])
        while len(buffered) < size:
            buffered += _recv(conn)
        body = bytes(buffered[:size])
        del buffered[:size]
        return status.encode(), headers, body
    body = b""
    while True:
        while b"\r\n" not in buffered:
            buffered += _recv(conn)
        size_line, _, _ = bytes(buffered).partition(b"\r\n")
        size = int(size_line, 16)
        while len(buffered) < len(size_line) + 2 + size + 2:
            buffered += _recv(conn)
        body += bytes(buffered[len(size_line) + 2:len(size_line) + 2 + size])
        del buffered[:len(size_line) + 2 + size + 2]
        if size == 0:
            return status.encode(), headers, body


def _recv(conn: socket.socket) -> bytes:
    data = conn.recv(65536)
    assert data, "the server closed the connection mid-answer"
    return data


def test_a_multipart_body_without_a_boundary_gets_the_protocols_error(daphne, funded_key):
    _fake, port = daphne
    _user, key = funded_key()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(_request(key, b"abc", content_type="multipart/form-data", path="/v1/audio/transcriptions"))
        status, headers, body = _read_answer(conn, bytearray())
    assert status.startswith(b"HTTP/1.1 400") and headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["type"] == "invalid_request_error"  # Twisted answered a bare 400 before


def test_an_answer_larger_than_the_socket_takes_arrives_whole_to_a_late_reader(daphne, funded_key):
    fake, port = daphne
    _user, key = funded_key()
    content = "0123456789abcdef" * (1 << 19)  # 8 MiB: more than a loopback socket buffers
    fake.behave("gpt-4o", content=content)
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(_request(key, body))
        time.sleep(1)  # the server has sent what the socket took and holds the rest
        buffered = bytearray()
        status, _headers, answer = _read_answer(conn, buffered)
        assert status.startswith(b"HTTP/1.1 200")
        assert json.loads(answer)["choices"][0]["message"]["content"] == content
        fake.behave("gpt-4o", content="again", chunks=4)
        streamed = json.dumps({"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
        conn.sendall(_request(key, streamed.encode(), close=True))  # the same connection, then closed
        status, headers, answer = _read_answer(conn, buffered)
        assert status.startswith(b"HTTP/1.1 200") and headers["transfer-encoding"] == "chunked"
        assert answer.rstrip().endswith(b"data: [DONE]")
        assert conn.recv(1) == b""  # closed once the answer was sent
    assert settled(lambda: UsageLog.objects.filter(status="success").count() == 2)


def test_stream_frames_leave_as_the_upstream_sends_them(daphne, funded_key):
    fake, port = daphne
    _user, key = funded_key()
    fake.behave("gpt-4o", content="one two three four", chunks=4, chunk_delay_ms=300)
    body = json.dumps({"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(_request(key, body.encode()))
        received = b""
        while received.count(b"data: ") < 2:
            received += _recv(conn)
        assert b"[DONE]" not in received  # frame by frame (300 ms apart), not buffered to the end


def test_pipelined_requests_are_answered_in_order_then_a_malformed_one_refused(daphne, funded_key):
    fake, port = daphne
    _user, key = funded_key()
    fake.behave("gpt-4o", content="same")
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(_request(key, body) + _request(key, b"{", path="/v1/embeddings") + b"NOT HTTP\r\n\r\n")
        buffered = bytearray()
        first, second, refused = (_read_answer(conn, buffered) for _ in range(3))
        assert conn.recv(1) == b""
    assert first[0] == b"HTTP/1.1 200 OK" and json.loads(first[2])["choices"][0]["message"]["content"] == "same"
    assert second[0] == b"HTTP/1.1 400 Bad Request"
    assert json.loads(second[2])["error"]["type"] == "invalid_request_error"
    # httptools' channel: Twisted's answered a bare 400, with no headers
    assert refused[0] == b"HTTP/1.1 400 Bad Request" and refused[1]["connection"] == "close"


def _self_signed(folder: Path) -> tuple[Path, Path]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    key_file, cert_file = folder / "key.pem", folder / "cert.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file


def test_over_tls_answers_and_stream_frames_arrive_encrypted_and_whole(transactional_db, funded_key, tmp_path):
    import httpx

    _user, key = funded_key()
    with FakeOpenAI(api_key=UPSTREAM_KEY) as fake, ServerProcesses() as processes:
        price_save(model="gpt-4o", model_ratio=1, completion_ratio=1)
        upstream_save(name="fake", type="openai", base_url=fake.url, keys=UPSTREAM_KEY, served_models=["gpt-4o"],
                      groups=[group_default().name])
        url, _proc = processes.start(server="daphne", tls=_self_signed(tmp_path))
        content = "0123456789abcdef" * 20000  # more than one TLS record, and past the unread-body limit going up
        fake.behave("gpt-4o", content=content, chunks=4)
        with httpx.Client(base_url=url, verify=False, timeout=20,
                          headers={"Authorization": f"Bearer {key}"}) as client:
            answer = client.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": [
                {"role": "user", "content": content}]})
            with client.stream("POST", "/v1/chat/completions", json={
                    "model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}) as stream:
                frames = [line for line in stream.iter_lines() if line.startswith("data: ")]
    assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"] == content
    assert frames[-1] == "data: [DONE]"
    assert "".join(json.loads(frame[6:])["choices"][0]["delta"].get("content") or ""
                   for frame in frames[:-1] if json.loads(frame[6:])["choices"]) == content


class DaphneServer:
    """What Daphne's request asks of its server."""

    server_name = "daphne"
    proxy_forwarded_address_header = None

    def protocol_connected(self, protocol: object) -> None:
        pass

    def protocol_disconnected(self, protocol: object) -> None:
        pass

    def log_action(self, *args: object) -> None:
        pass


class TCPSocket(Socket):
    TLS = False

    def getPeer(self) -> IPv4Address:  # noqa: N802
        return IPv4Address("TCP", "127.0.0.1", 50000)

    def getHost(self) -> IPv4Address:  # noqa: N802
        return IPv4Address("TCP", "127.0.0.1", 8000)


def _channel(sock: TCPSocket) -> HTTPChannel:
    channel = HTTPChannel()
    channel.factory = SimpleNamespace(server=DaphneServer(), log=lambda request: None)  # Daphne's factory, as used
    channel.makeConnection(sock)
    return channel


@pytest.mark.parametrize("tuned", [True, False])
def test_what_one_asgi_message_writes_leaves_with_it(tuned):
    import daphne.http_protocol as http_protocol

    tune_daphne()
    request_class = http_protocol.WebRequest if tuned else http_protocol.WebRequest.__mro__[1]
    sock = TCPSocket()
    sock.release()
    channel = _channel(sock)
    request = request_class(channel)
    request.method, request.uri, request.clientproto = b"POST", b"/v1/chat/completions", b"HTTP/1.1"
    request.handle_reply({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    request.handle_reply({"type": "http.response.body", "body": b"hi", "more_body": True})
    if tuned:
        assert sock.sent.startswith(b"HTTP/1.1 200 OK\r\n") and sock.sent.endswith(b"\r\n2\r\nhi\r\n")
        assert sock.reactor.writers == set()
    else:  # Twisted's way: buffered until the reactor finds the socket writable
        assert sock.sent == b"" and sock.reactor.writers == {sock}


def _streaming_request(sock: TCPSocket):
    import daphne.http_protocol as http_protocol

    tune_daphne()
    channel = _channel(sock)
    request = http_protocol.WebRequest(channel)
    channel.requests.append(request)
    request.method, request.uri, request.clientproto = b"POST", b"/v1/chat/completions", b"HTTP/1.1"
    request.handle_reply({"type": "http.response.start", "status": 200, "headers": []})
    request.handle_reply({"type": "http.response.body", "body": b"first", "more_body": True})
    return request


def test_stream_chunks_are_framed_and_sent_as_they_come_the_rest_in_order_after_what_waits():
    sock = TCPSocket()
    sock.release()
    request = _streaming_request(sock)
    request.handle_reply({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
    request.handle_reply({"type": "http.response.body", "body": b"", "more_body": True})
    assert sock.sent.endswith(b"\r\n5\r\nfirst\r\n9\r\ndata: 1\n\n\r\n") and sock.reactor.writers == set()
    sock.room = 4  # a slow reader: the socket takes part of the next chunk
    request.handle_reply({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": True})
    assert sock.sent.endswith(b"9\r\nd") and sock.reactor.writers == {sock}
    request.handle_reply({"type": "http.response.body", "body": b"data: 3\n\n", "more_body": True})  # waits behind
    sock.room = 1 << 20
    sock.doWrite()  # the reactor, once the socket is writable
    request.handle_reply({"type": "http.response.body", "body": b"", "more_body": False})
    sock.doWrite()
    assert sock.sent.endswith(b"9\r\ndata: 2\n\n\r\n9\r\ndata: 3\n\n\r\n0\r\n\r\n")
    assert request.sentLength == len(b"first") + 2 * 9 + 9 and sock.reactor.writers == set()


def test_a_stream_chunk_the_socket_refuses_is_left_to_the_reactor_and_none_follow_a_gone_client():
    sock = TCPSocket()
    sock.release()
    request = _streaming_request(sock)
    sock.fails = True
    request.handle_reply({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
    assert sock.reactor.writers == {sock} and isinstance(sock.doWrite(), ConnectionResetError)
    sock = TCPSocket()
    sock.release()
    request = _streaming_request(sock)
    sent = sock.sent
    request.connectionLost(ConnectionResetError())
    request.handle_reply({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
    assert sock.sent == sent and sock.reactor.writers == set()


def test_a_reply_made_while_another_is_held_goes_out_with_it():
    """Finishing an answer can parse the next pipelined request at once; Daphne answers a malformed one from inside
    the first reply."""
    import daphne.http_protocol as http_protocol

    tune_daphne()
    sock = TCPSocket()
    sock.release()
    channel = _channel(sock)
    first, malformed = http_protocol.WebRequest(channel), http_protocol.WebRequest(channel)
    for request in (first, malformed):
        request.method, request.uri, request.clientproto = b"GET", b"/", b"HTTP/1.1"
    channel.requests.append(first)
    first.handle_reply({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
    first.handle_reply({"type": "http.response.body", "body": b"hello", "more_body": True})
    finish = first.finish

    def finish_then_answer_the_next() -> None:
        finish()
        channel.requests.append(malformed)  # as the channel does, parsing what the client sent after the first
        malformed.basic_error(400, b"Bad Request", "Invalid header value")

    first.finish = finish_then_answer_the_next
    first.handle_reply({"type": "http.response.body", "body": b""})  # writes nothing itself
    assert sock.sent.count(b"HTTP/1.1 ") == 2 and sock.sent.index(b"hello") < sock.sent.index(b"400 Bad Request")
    assert sock.reactor.writers == set() and "startWriting" not in vars(sock)


def test_daphne_reaches_twisteds_http_module_without_its_deprecation_proxy():
    import daphne.http_protocol as http_protocol
    import twisted.web.http
    from twisted.python.deprecate import _ModuleProxy

    tune_daphne()
    assert isinstance(twisted.web.http, _ModuleProxy)  # Twisted's own name for it: still the proxy
    assert not isinstance(http_protocol.http, _ModuleProxy)
    assert http_protocol.http.Request is twisted.web.http.Request


def test_requests_are_found_among_daphnes_connections_by_identity_without_a_python_call():
    import daphne.http_protocol as http_protocol

    tune_daphne()
    request_class = http_protocol.WebRequest
    assert request_class.__hash__ is object.__hash__ and request_class.__eq__ is object.__eq__
    first, second = object.__new__(request_class), object.__new__(request_class)
    connections = {first: "first", second: "second"}
    assert connections[first] == "first" and connections[second] == "second" and first != second


def test_twisteds_combined_log_line_is_not_formatted_daphne_prints_its_own():
    import daphne.http_protocol as http_protocol

    tune_daphne()
    lines = []
    factory = http_protocol.HTTPFactory(DaphneServer())
    factory._logFile = SimpleNamespace(write=lines.append)  # where Twisted's line would go
    request = http_protocol.WebRequest(_channel(TCPSocket()))
    request.method, request.uri, request.clientproto = b"POST", b"/v1/chat/completions", b"HTTP/1.1"
    factory.log(request)
    assert lines == []


def test_a_close_frame_carries_any_code_an_endpoint_may_send_and_its_reason():
    assert close_frame(None, None) == (1000, None)
    assert close_frame(1008, "invalid_api_key") == (1008, b"invalid_api_key")
    assert close_frame(1014, "") == (1014, None)
    assert close_frame(4000, "upstream says bye") == (4000, b"upstream says bye")
    reason = close_frame(1011, "é" * 100)[1]  # 200 bytes of UTF-8: cut to 123 on a character boundary
    assert reason == "é".encode() * 61 and reason.decode()
    for unsendable in (1005, 1006, 1015, 999, 2000, 5000, "1000"):
        assert close_frame(unsendable, "why") == (None, None)


def test_a_realtime_refusal_reaches_the_client_as_its_close_code_and_reason(daphne):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    _fake, port = daphne
    with connect(f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-4o", additional_headers={"Authorization": "Bearer sk-no"},
                 open_timeout=5, proxy=None) as ws:
        assert json.loads(ws.recv(timeout=5))["error"]["code"] == "invalid_api_key"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)  # autobahn refused 1008 from Daphne's own close call: the socket stayed open
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "invalid_api_key")
