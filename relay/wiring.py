"""Which wire carries a client protocol over an upstream family."""

from __future__ import annotations

from typing import Any

from relay.adapters import adapter_for
from relay.errors import RelayError
from relay.wires import (
    ANTHROPIC, OPENAI, AnthropicPassThrough, AnthropicViaOpenAI, OpenAIChatViaAnthropic, OpenAIPassThrough,
)
from relay.wires_chained import ViaChat
from relay.wires_gemini import GEMINI, GeminiPassThrough, GeminiViaOpenAI, OpenAIChatViaGemini
from relay.adapters.gemini import EMBED_ACTIONS
from relay.wires_cohere import CohereChatViaOpenAI, CohereEmbedViaOpenAI
from relay.wires_gemini_embed import (
    GeminiEmbedPassThrough, GeminiEmbedViaOpenAI, OpenAIEmbeddingsViaGemini, OpenAIEmbeddingsViaVertex,
)
from relay.wires_media import (
    ImageEditWire, ImageGenerationWire, ImagesViaGeminiImage, ImagesViaImagen, SpeechWire, TranscriptionWire, Upload,
)
from relay.wires_rerank import COHERE, RerankWire
from relay.wires_responses import ResponsesCompactPassThrough, ResponsesPassThrough, ResponsesViaChat

OPENAI_LIKE = {"openai", "demo", "azure"}
MEDIA_OPERATIONS = {"audio/speech", "audio/transcriptions", "audio/translations", "images/edits"}
MULTIPART_OPERATIONS = {"audio/transcriptions", "audio/translations", "images/edits"}


VERTEX_OPERATIONS = {"chat/completions", "messages", "generateContent", "predict"}  # what Vertex AI is asked here


def wire_for(client: str, family: str, operation: str, body: dict[str, Any], *, model: str, stream: bool,
             default_max_tokens: int, input_estimate: int, upstream_type: str = "", request_id: str = "",
             upload: Upload | None = None, native_responses: bool = True) -> Any | None:
    """The wire carrying `client` over an upstream of `family`, or None if the relay cannot carry it there."""
    wire = _wire(client, family, operation, body, model=model, stream=stream, default_max_tokens=default_max_tokens,
                 input_estimate=input_estimate, upstream_type=upstream_type, request_id=request_id, upload=upload,
                 native_responses=native_responses)
    if wire is not None and upstream_type == "vertex" and wire.operation not in VERTEX_OPERATIONS:
        return None  # Gemini's embedding actions, media and the Responses API are not offered through Vertex AI
    return wire


def _wire(client: str, family: str, operation: str, body: dict[str, Any], *, model: str, stream: bool,
          default_max_tokens: int, input_estimate: int, upstream_type: str, request_id: str,
          upload: Upload | None, native_responses: bool) -> Any | None:
    chat = operation == "chat/completions"
    if operation in MEDIA_OPERATIONS:  # OpenAI's own formats, to upstreams that speak them
        if family not in OPENAI_LIKE - {"demo"}:
            return None
        if operation == "audio/speech":
            return SpeechWire(body)
        assert upload is not None
        if operation == "images/edits":
            return ImageEditWire(operation, upload, body)
        return TranscriptionWire(operation, upload, body)
    if operation == "responses":  # natively where the upstream has the API, else through chat completions
        if client != OPENAI:
            return None
        if family in ("anthropic", "gemini"):
            return _chat_to(family, ResponsesViaChat(body, input_estimate), default_max_tokens)
        if family not in OPENAI_LIKE:
            return None
        if native_responses and family != "demo":
            return ResponsesPassThrough(body)
        return ResponsesViaChat(body, input_estimate)
    if operation == "responses/compact":  # only where the upstream has the Responses API itself
        native = client == OPENAI and family in OPENAI_LIKE - {"demo"} and native_responses
        return ResponsesCompactPassThrough(body) if native else None
    if operation in EMBED_ACTIONS:  # Gemini clients' embeddings
        if family == "gemini":
            return GeminiEmbedPassThrough(operation, body)
        return GeminiEmbedViaOpenAI(operation, body) if family in OPENAI_LIKE else None
    if client == COHERE and operation in ("chat/completions", "embeddings"):  # Cohere v2 chat and embed
        if operation == "embeddings":
            return CohereEmbedViaOpenAI(body) if family in OPENAI_LIKE else None
        if family in ("anthropic", "gemini"):
            return _chat_to(family, CohereChatViaOpenAI(body), default_max_tokens)
        return CohereChatViaOpenAI(body) if family in OPENAI_LIKE else None
    if operation == "rerank":
        if family == "rerank" or family in OPENAI_LIKE - {"demo"}:
            return RerankWire(client, body, cohere_upstream=upstream_type == "cohere", request_id=request_id)
        return None
    if client == OPENAI:
        if family in OPENAI_LIKE:
            if operation == "images/generations":
                return ImageGenerationWire(body)
            return OpenAIPassThrough(operation, body)
        if family == "anthropic" and chat:
            return OpenAIChatViaAnthropic(body, default_max_tokens)
        if family == "gemini" and chat:
            return OpenAIChatViaGemini(body)
        if family == "gemini" and operation == "images/generations":
            return ImagesViaImagen(body) if model.startswith("imagen") else ImagesViaGeminiImage(body)
        if family == "gemini" and operation == "embeddings":
            via = OpenAIEmbeddingsViaVertex if upstream_type == "vertex" else OpenAIEmbeddingsViaGemini
            return via(body, input_estimate)
    elif client == ANTHROPIC:
        if family == "anthropic":
            return AnthropicPassThrough(body)
        if family in OPENAI_LIKE:
            return AnthropicViaOpenAI(body, input_estimate)
        if family == "gemini":
            return _chat_to(family, AnthropicViaOpenAI(body, input_estimate), default_max_tokens)
    elif client == GEMINI:
        if family == "gemini":
            return GeminiPassThrough(body)
        if family in OPENAI_LIKE:
            return GeminiViaOpenAI(body, model, stream)
        if family == "anthropic":
            return _chat_to(family, GeminiViaOpenAI(body, model, stream), default_max_tokens)
    return None


def _chat_to(family: str, outer: Any, default_max_tokens: int) -> ViaChat:
    """A client wire over OpenAI chat, joined to OpenAI chat over an Anthropic or Gemini upstream."""
    if family == "anthropic":
        return ViaChat(outer, OpenAIChatViaAnthropic, default_max_tokens=default_max_tokens)
    return ViaChat(outer, OpenAIChatViaGemini)


def responses_native(upstream: Any) -> bool:
    """Whether an upstream takes /responses itself: its provider's default, unless its extras say otherwise."""
    native = upstream.extras.get("responses")
    return native if isinstance(native, bool) else upstream.provider.native_responses


def carries(client: str, operation: str, body: dict[str, Any], upstream: Any, *, model: str, stream: bool,
            upload: Upload | None) -> bool:
    """Whether some wire carries this request to `upstream` (a request the wire refuses as such still counts: that
    refusal is the caller's 400, not a missing upstream)."""
    try:
        return wire_check(client, operation, body, upstream, model=model, stream=stream, upload=upload)
    except RelayError:
        return True


def wire_check(client: str, operation: str, body: dict[str, Any], upstream: Any, *, model: str, stream: bool,
               upload: Upload | None) -> bool:
    """Whether a wire carries this request to `upstream`; raises the wire's 400 for what it cannot carry as sent."""
    adapter = adapter_for(upstream, upstream.upstream_model(model))
    if adapter is None:
        return False
    wire = wire_for(client, adapter.family, operation, body, model=model, stream=stream, default_max_tokens=1,
                    input_estimate=0, upstream_type=upstream.type, upload=upload,
                    native_responses=responses_native(upstream))
    return wire is not None
