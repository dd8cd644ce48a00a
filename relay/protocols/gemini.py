"""Google Gemini ⇄ OpenAI Chat translations (protocols.md §5): one import path for the pure functions."""

from __future__ import annotations

from relay.protocols.gemini_request import gemini_request_to_openai_chat, openai_chat_to_gemini
from relay.protocols.gemini_response import (
    gemini_error_body,
    gemini_error_to_openai,
    gemini_to_openai_chat_response,
    openai_chat_response_to_gemini,
    usage_from_gemini,
)
from relay.protocols.gemini_stream import GeminiToOpenAIStream, OpenAIToGeminiStream

__all__ = [
    "GeminiToOpenAIStream",
    "OpenAIToGeminiStream",
    "gemini_error_body",
    "gemini_error_to_openai",
    "gemini_request_to_openai_chat",
    "gemini_to_openai_chat_response",
    "openai_chat_response_to_gemini",
    "openai_chat_to_gemini",
    "usage_from_gemini",
]
