"""The in-place multipart reader: fields, files as offsets, the model rewritten without copying the upload."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy

import httpx
import pytest

from relay.errors import RelayError
from relay.multipart import form_parse


def _encoded(fields: dict, files: dict) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://x/", data=fields, files=files)
    return request.read(), request.headers["content-type"]


def _collect(stream) -> bytes:
    async def run() -> bytes:
        return b"".join([chunk async for chunk in stream])

    return asyncio.run(run())


def test_fields_and_files_are_read_in_place():
    audio = bytes(range(256)) * 1000 + b"\r\n--not-a-boundary\r\n"
    body, content_type = _encoded({"model": "whisper-1", "language": "zh"}, {"file": ("a b.wav", audio, "audio/wav")})
    form = form_parse(body, content_type)
    assert form.fields == {"model": "whisper-1", "language": "zh"}
    [part] = form.files("file")
    assert part.filename == "a b.wav" and part.content_type == "audio/wav"
    assert bytes(form.file_bytes(part)) == audio


def test_the_model_is_rewritten_and_the_rest_sent_unchanged():
    audio = b"\x00\xff" * 100_000
    body, content_type = _encoded({"model": "alias", "prompt": "p"}, {"file": ("a.wav", audio)})
    stream, length = form_parse(body, content_type).stream(model="whisper-1")
    sent = _collect(stream)
    assert len(sent) == length
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + sent)
    parts = {p.get_param("name", header="content-disposition"): p.get_payload(decode=True) for p in message.iter_parts()}
    assert parts == {"model": b"whisper-1", "prompt": b"p", "file": audio}
    unchanged, length = form_parse(body, content_type).stream()
    assert _collect(unchanged) == body and length == len(body)


@pytest.mark.parametrize(("body", "content_type", "message"), [
    (b"x", "application/json", "multipart/form-data"),
    (b"x", "multipart/form-data", "no boundary"),
    (b"nothing here", "multipart/form-data; boundary=abc", "no parts"),
    (b"--abc\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue", "multipart/form-data; boundary=abc",
     "truncated"),
    (b"--abcXX", "multipart/form-data; boundary=abc", "malformed"),
    (b"--abc\r\nContent-Type: text/plain\r\n\r\nv\r\n--abc--", "multipart/form-data; boundary=abc", "no name"),
])
def test_malformed_bodies_are_a_400(body, content_type, message):
    with pytest.raises(RelayError) as caught:
        form_parse(body, content_type)
    assert caught.value.status == 400 and message in caught.value.message
