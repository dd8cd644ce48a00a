"""OpenAI Responses API ⇄ OpenAI chat (protocols.md §2): serve Responses clients from a Chat-only upstream.

One import path for the pure translations: the request, the non-streaming response and the stream.
"""

from __future__ import annotations

from relay.protocols.responses_output import openai_chat_response_to_responses
from relay.protocols.responses_request import (
    ProtocolError,
    responses_request_to_openai_chat,
)
from relay.protocols.responses_stream import OpenAIToResponsesStream

__all__ = [
    "OpenAIToResponsesStream",
    "ProtocolError",
    "openai_chat_response_to_responses",
    "responses_request_to_openai_chat",
]
