"""Server-sent events: frames split the same however the bytes arrive, and read the same by the one-data-line fast
path as by the general reading of their lines."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.protocols.sse import Frame, FrameSplitter, _frame_parse_lines, frame_parse

STREAM = (b'data: {"choices":[{"delta":{"content":"a: b"}}]}\r\n\r\n'
          b": keep-alive\n\n"
          b"event: message_start\ndata: {\"type\":\"message_start\"}\n\n"
          b"data: first\ndata: second\n\n"
          b"\n"
          b"data:no space\n\n"
          b"data: \xe4\xbd\xa0\xe5\xa5\xbd \xff\n\n"
          b"data: [DONE]\n\n"
          b"data: unfinished")


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(STREAM)])
def test_frames_are_the_same_in_whatever_pieces_the_bytes_arrive(size):
    splitter = FrameSplitter()
    frames = [frame for start in range(0, len(STREAM), size) for frame in splitter.feed(STREAM[start:start + size])]
    assert frames == [b'data: {"choices":[{"delta":{"content":"a: b"}}]}\n\n', b": keep-alive\n\n",
                      b'event: message_start\ndata: {"type":"message_start"}\n\n', b"data: first\ndata: second\n\n",
                      b"\ndata:no space\n\n", b"data: \xe4\xbd\xa0\xe5\xa5\xbd \xff\n\n", b"data: [DONE]\n\n"]
    assert splitter.rest() == b"data: unfinished"


@pytest.mark.parametrize("raw", [
    b'data: {"choices":[{"delta":{"content":"a: b"}}]}\n\n', b"data: [DONE]\n\n", b"data: \n\n", b"data: x\r\n\n",
    b"data: \xe4\xbd\xa0\xe5\xa5\xbd \xff\n\n", b": keep-alive\n\n", b"data: first\ndata: second\n\n",
    b"event: ping\ndata: {}\n\n", b"data:no space\n\n", b"data: a\n\n\n", b"\ndata: a\n\n", b"data: a", b"data:  two\n\n",
])
def test_the_one_data_line_fast_path_reads_as_the_general_one(raw):
    assert frame_parse(raw) == _frame_parse_lines(raw)


def test_a_single_data_frame_reads_its_data():
    assert frame_parse(b'data: {"a": 1}\n\n') == Frame(event="", data='{"a": 1}', is_comment_only=False)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([b"data: {}", b"x", b":", b" ", b"\n", b"\r\n", b"\n\n", b"\r\n\r\n"]), max_size=40),
       st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=40))
def test_frames_are_those_of_the_whole_stream_however_it_is_cut(parts, sizes):
    stream = b"".join(parts)
    *whole, rest = stream.replace(b"\r\n", b"\n").split(b"\n\n")
    splitter, frames, start = FrameSplitter(), [], 0
    for size in sizes * (len(stream) // max(sum(sizes), 1) + 1):
        frames.extend(splitter.feed(stream[start:start + size]))
        start += size
    assert start >= len(stream)
    assert frames == [frame + b"\n\n" for frame in whole] and splitter.rest() == rest
