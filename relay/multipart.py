"""multipart/form-data read in place: the text fields are decoded, file parts are kept as offsets into the body.

Uploads (audio to transcribe, images to edit) are held once, in the request body: the relay reads the fields it
needs (model, size, n ...) and sends the same bytes upstream in chunks, changing only the `model` field when the
upstream knows the model by another name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import AsyncIterator

from relay.errors import RelayError

BOUNDARY = re.compile(r'boundary="?([^";,]+)"?', re.IGNORECASE)
DISPOSITION_PARAM = re.compile(r';\s*([a-zA-Z*]+)="((?:[^"\\]|\\.)*)"|;\s*([a-zA-Z*]+)=([^;\s]+)')
MAX_TEXT_FIELD = 1 << 20
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    content_type: str
    start: int  # the part's value: body[start:end]
    end: int


@dataclass
class Form:
    body: bytes
    content_type: str  # the request's header, boundary included
    parts: list[Part] = field(default_factory=list)

    @property
    def fields(self) -> dict[str, str]:
        """Text fields (the last value of each name; list fields such as `include[]` keep their last value)."""
        return {p.name: self.body[p.start:p.end].decode("utf-8", errors="replace")
                for p in self.parts if p.filename is None and p.end - p.start <= MAX_TEXT_FIELD}

    def files(self, *names: str) -> list[Part]:
        return [p for p in self.parts if p.filename is not None and (not names or p.name in names)]

    def file_bytes(self, part: Part) -> memoryview:
        return memoryview(self.body)[part.start:part.end]

    def replaced(self, name: str, value: str) -> tuple[list[memoryview | bytes], int]:
        """The body with text field `name` set to `value`, as pieces sharing the original buffer, and its length."""
        view = memoryview(self.body)
        pieces: list[memoryview | bytes] = []
        cursor = 0
        for part in self.parts:
            if part.name == name and part.filename is None:
                pieces += [view[cursor:part.start], value.encode()]
                cursor = part.end
        pieces.append(view[cursor:])
        return pieces, sum(len(p) for p in pieces)

    def stream(self, *, model: str | None = None) -> tuple[AsyncIterator[bytes], int]:
        """The body to send upstream (with `model` replaced when given) in chunks of at most 64 KiB, and its
        length; each call starts afresh, so a retry on another upstream sends it again."""
        pieces, length = self.replaced("model", model) if model is not None else ([memoryview(self.body)],
                                                                                  len(self.body))

        async def chunks() -> AsyncIterator[bytes]:
            for piece in pieces:
                for offset in range(0, len(piece), CHUNK):
                    yield bytes(piece[offset:offset + CHUNK])

        return chunks(), length


def _disposition(value: str) -> dict[str, str]:
    params = {}
    for match in DISPOSITION_PARAM.finditer(value):
        key = (match[1] or match[3]).lower()
        params[key] = (match[2] if match[1] else match[4]).replace('\\"', '"')
    return params


def form_parse(body: bytes, content_type: str) -> Form:
    """Parse a multipart body, or a 400 that says what is wrong with it."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise RelayError(400, "Send this request as multipart/form-data.")
    match = BOUNDARY.search(content_type)
    if match is None:
        raise RelayError(400, "The multipart content type has no boundary.")
    delimiter = b"--" + match[1].encode("latin-1")
    form = Form(body=body, content_type=content_type)
    position = body.find(delimiter)
    if position < 0:
        raise RelayError(400, "The multipart body has no parts.")
    while True:
        position += len(delimiter)
        if body[position:position + 2] == b"--":
            return form
        if body[position:position + 2] != b"\r\n":
            raise RelayError(400, "The multipart body is malformed.")
        header_start = position + 2
        header_end = body.find(b"\r\n\r\n", header_start)
        next_delimiter = body.find(b"\r\n" + delimiter, header_end + 4) if header_end >= 0 else -1
        if header_end < 0 or next_delimiter < 0:
            raise RelayError(400, "The multipart body is truncated.")
        headers = {}
        for line in body[header_start:header_end].decode("utf-8", errors="replace").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        params = _disposition(headers.get("content-disposition", ""))
        if "name" not in params:
            raise RelayError(400, "A multipart part has no name.")
        form.parts.append(Part(name=params["name"], filename=params.get("filename"),
                               content_type=headers.get("content-type", ""), start=header_end + 4,
                               end=next_delimiter))
        position = next_delimiter + 2
