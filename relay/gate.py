"""Everything decided before a request goes upstream: who calls, may they, what it costs at worst, where to."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from billing.pricing import quota_for_call, quota_for_minutes, quota_for_tokens
from relay import errors
from relay.conf import settings
from relay.http import RelayRequest
from relay.model_suffixes import OPERATIONS as SUFFIX_OPERATIONS
from relay.model_suffixes import thinking_suffix, with_thinking
from relay.routing import candidates
from relay.snapshots import PriceInfo, Snapshots, TokenContext, UpstreamInfo, now_ts, upstreams_serving
from relay.tokenizer import estimate_prompt
from relay.usage import Usage
from relay.adapters.gemini import EMBED_ACTIONS
from relay.wires_gemini_embed import embed_validate
from relay.wires_media import AUDIO_TOKENS_PER_SECOND, speech_characters

MAX_N = 128
IMAGE_OPERATIONS = {"images/generations", "images/edits"}
IMAGE_OUTPUT_TOKENS = 6_240  # the most a GPT image model bills for one image (high quality, largest size)
DEFAULT_IMAGE_SIZE = "1024x1024"
SPEECH_MAX_CHARACTERS = 4_096
TRANSCRIPTION_FORMATS = {"json", "text", "srt", "verbose_json", "vtt", "diarized_json"}


def api_key_from(headers: dict[str, str]) -> str:
    """`Authorization: Bearer sk-...`, `X-API-Key`/`x-api-key`, or Google's `x-goog-api-key`."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return (headers.get("x-api-key") or headers.get("x-goog-api-key") or "").strip()


async def authenticate(snapshots: Snapshots, req: RelayRequest, *, query_key: bool = False) -> TokenContext:
    """The caller's token context; Gemini clients may also send the key as `?key=` (`query_key`)."""
    key = api_key_from(req.headers) or (req.query.get("key", "").strip() if query_key else "")
    if not key:
        raise errors.unauthorized("No API key provided. Send it as 'Authorization: Bearer sk-...'.")
    ctx = await snapshots.token(key) if key.startswith("sk-") and len(key) < 128 else None
    if ctx is None:
        raise errors.unauthorized("Incorrect API key provided.")
    if not ctx.active:
        raise errors.unauthorized(ctx.refusal)
    if ctx.expires_at is not None and ctx.expires_at <= now_ts():
        raise errors.unauthorized("This API key has expired.")
    if not ctx.ip_allowed(req.client_ip):
        raise errors.forbidden(f"This API key may not be used from {req.client_ip}.", "ip_not_allowed")
    return ctx


async def authenticate_key(snapshots: Snapshots, key: str, client_ip: str | None) -> TokenContext:
    """`authenticate` for callers that found the key themselves (a WebSocket's header or subprotocol)."""
    key = key.strip()
    if not key:
        raise errors.unauthorized("No API key provided. Send it as 'Authorization: Bearer sk-...'.")
    ctx = await snapshots.token(key) if key.startswith("sk-") and len(key) < 128 else None
    if ctx is None:
        raise errors.unauthorized("Incorrect API key provided.")
    if not ctx.active:
        raise errors.unauthorized(ctx.refusal)
    if ctx.expires_at is not None and ctx.expires_at <= now_ts():
        raise errors.unauthorized("This API key has expired.")
    if not ctx.ip_allowed(client_ip):
        raise errors.forbidden(f"This API key may not be used from {client_ip}.", "ip_not_allowed")
    return ctx


def _encodable(text: str) -> bool:
    """No NUL and no unpaired surrogate: what JSON may carry but UTF-8 (and PostgreSQL) cannot."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _shown(name: str) -> str:
    """A client-chosen name as it may appear in a message: unencodable characters replaced."""
    return name.encode("utf-8", "replace").decode("utf-8")


def _positive_int(body: dict[str, Any], name: str, *, maximum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise errors.bad_request(f"'{name}' must be an integer from 1 to {maximum}.", param=name)
    return value


def validate(body: dict[str, Any], operation: str) -> str:
    """Check the fields every upstream needs; returns the model name."""
    if operation in EMBED_ACTIONS:  # Gemini embeddings: the model is in the path, the texts in content parts
        embed_validate(body, operation)
        return ""
    if operation == "generateContent":  # Gemini: the model is in the path, the turns in `contents`
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents or not all(isinstance(c, dict) for c in contents):
            raise errors.bad_request("contents: a non-empty array of turns is required.", param="contents")
        return str(body.get("model", ""))
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise errors.bad_request("'model' is required and must be a string.", param="model")
    if not _encodable(model):  # a name echoed into an error message must encode as UTF-8
        raise errors.bad_request("'model' holds a NUL character or an unpaired surrogate.", param="model")
    if operation in IMAGE_OPERATIONS:
        if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
            raise errors.bad_request("'prompt' is required and must be a string.", param="prompt")
        _positive_int(body, "n", maximum=10)
        if body.get("stream") is True and (body.get("n") or 1) > 1:  # each image's usage is not known apart
            raise errors.bad_request("A streamed image request makes one image: set 'n' to 1.", param="n")
        for name in ("size", "quality"):
            if name in body and not isinstance(body[name], str):
                raise errors.bad_request(f"'{name}' must be a string.", param=name)
    if operation == "audio/speech":
        if not isinstance(body.get("input"), str) or not body["input"].strip():
            raise errors.bad_request("'input' is required and must be a string.", param="input")
        if len(body["input"]) > SPEECH_MAX_CHARACTERS:
            raise errors.bad_request(f"'input' is longer than {SPEECH_MAX_CHARACTERS} characters.", param="input")
        if not isinstance(body.get("voice"), (str, dict)) or not body["voice"]:
            raise errors.bad_request("'voice' is required.", param="voice")
        speed = body.get("speed")
        if speed is not None and (isinstance(speed, bool) or not isinstance(speed, (int, float))
                                  or not 0.25 <= speed <= 4.0):
            raise errors.bad_request("'speed' must be a number from 0.25 to 4.0.", param="speed")
    if operation in {"audio/transcriptions", "audio/translations"}:
        fmt = body.get("response_format", "json")
        if fmt not in TRANSCRIPTION_FORMATS:
            raise errors.bad_request(f"'response_format' must be one of {', '.join(sorted(TRANSCRIPTION_FORMATS))}.",
                                     param="response_format")
    if operation == "responses" and body.get("input") in (None, "", []):
        raise errors.bad_request("'input' is required.", param="input")
    if operation == "responses/compact":
        if body.get("input") in (None, "", []) and not body.get("previous_response_id"):
            raise errors.bad_request("'input' or 'previous_response_id' is required.", param="input")
        if body.get("stream"):
            raise errors.bad_request("A compaction is not streamed: leave out 'stream'.", param="stream")
    if operation == "rerank":
        if not isinstance(body.get("query"), str) or not body["query"].strip():
            raise errors.bad_request("'query' is required and must be a string.", param="query")
        documents = body.get("documents")
        if not isinstance(documents, list) or not documents or len(documents) > 10_000:
            raise errors.bad_request("'documents' must be a non-empty array (at most 10,000).", param="documents")
        _positive_int(body, "top_n", maximum=10_000)
    if operation == "messages":  # Anthropic: max_tokens is required, roles are user and assistant only
        if isinstance(body.get("max_tokens"), bool) or not isinstance(body.get("max_tokens"), int):
            raise errors.bad_request("max_tokens: Field required (an integer).", param="max_tokens")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise errors.bad_request("messages: Field required (a non-empty array).", param="messages")
        if not all(isinstance(m, dict) and m.get("role") in {"user", "assistant"} for m in messages):
            raise errors.bad_request("messages: each message needs role 'user' or 'assistant'.", param="messages")
    elif operation == "chat/completions":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise errors.bad_request("'messages' is required and must be a non-empty array.", param="messages")
        if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
            raise errors.bad_request("Each message must be an object with a 'role'.", param="messages")
    elif operation == "completions" and body.get("prompt") in (None, "", []):
        raise errors.bad_request("'prompt' is required.", param="prompt")
    elif operation in {"embeddings", "moderations"} and body.get("input") in (None, "", []):
        raise errors.bad_request("'input' is required.", param="input")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise errors.bad_request("'stream' must be a boolean.", param="stream")
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        _positive_int(body, name, maximum=10_000_000)
    _positive_int(body, "n", maximum=MAX_N)
    return model.strip()


def price_for(prices: dict[str, PriceInfo], model: str) -> PriceInfo:
    price = prices.get(model)
    if price is not None:
        return price
    default_ratio = settings.RELAY_UNPRICED_MODEL_RATIO
    if default_ratio:
        ratio = Decimal(default_ratio)
        return PriceInfo(model, "", "general", None, ratio, Decimal(1), Decimal(1), None)
    raise errors.forbidden(f"The model '{model}' has no price set; ask the operator to add one.",
                           "model_price_not_set")


def cost_of(price: PriceInfo, group_ratio: Decimal, usage: Usage, calls: int = 1, *, size: str = "",
            quality: str = "") -> int:
    """The quota for `usage`: by audio minutes when the model has a price per minute, else `calls` calls (images:
    one per image, priced by size and quality) of a per-call price, else by tokens (all at the long-context tier's
    multipliers when the prompt is past its threshold)."""
    if price.price_per_minute is not None and usage.audio_seconds > 0:
        return quota_for_minutes(seconds=usage.audio_seconds, price_usd_per_minute=price.price_per_minute,
                                 group_ratio=group_ratio)
    per_call = price.call_usd(size, quality)
    if per_call is not None:
        return quota_for_call(price_usd=per_call, group_ratio=group_ratio) * calls
    long = price.long_context
    prompt_x, completion_x = (long[1], long[2]) if long and usage.prompt_tokens > long[0] else (Decimal(1), Decimal(1))
    return quota_for_tokens(
        prompt_multiplier=prompt_x, completion_multiplier=completion_x,
        prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens, group_ratio=group_ratio, model_ratio=price.model_ratio,
        completion_ratio=price.completion_ratio, cache_ratio=price.cache_ratio,
        cache_write_tokens=usage.cache_write_tokens, cache_write_ratio=price.cache_write_ratio,
        audio_prompt_tokens=usage.audio_prompt_tokens, audio_ratio=price.audio_ratio,
        audio_completion_tokens=usage.audio_completion_tokens, audio_completion_ratio=price.audio_completion_ratio,
    )


def calls_of(body: dict[str, Any], operation: str) -> int:
    """How many priced calls a request is: one per image for image generation and edits, else one."""
    return (body.get("n") or 1) if operation in IMAGE_OPERATIONS else 1


def shape_of(body: dict[str, Any], operation: str) -> dict[str, str]:
    """The size and quality an image request is priced by (`cost_of`'s keywords)."""
    if operation not in IMAGE_OPERATIONS:
        return {}
    size, quality = body.get("size"), body.get("quality")
    return {"size": size if isinstance(size, str) and size != "auto" else DEFAULT_IMAGE_SIZE,
            "quality": quality if isinstance(quality, str) else ""}


def worst_case(body: dict[str, Any], operation: str, *, audio_seconds: float = 0.0) -> Usage:
    """The usage a request can reach at most: estimated prompt plus its output cap (times n). Speech counts its
    input's characters; transcription reserves for the upload's duration."""
    if operation == "audio/speech":
        return Usage(speech_characters(body), 0)
    if operation in {"audio/transcriptions", "audio/translations"}:
        audio = math.ceil(audio_seconds * AUDIO_TOKENS_PER_SECOND)
        return Usage(audio, audio, audio_prompt_tokens=audio, audio_seconds=audio_seconds)
    prompt = estimate_prompt(body, operation)
    if operation in IMAGE_OPERATIONS:
        return Usage(prompt, IMAGE_OUTPUT_TOKENS * (body.get("n") or 1))
    if operation in {"embeddings", "moderations", "rerank"} or operation in EMBED_ACTIONS:
        return Usage(prompt, 0)
    if operation == "messages":
        return Usage(prompt, body["max_tokens"])
    if operation == "generateContent":
        config = body.get("generationConfig") or body.get("generation_config") or {}
        cap = config.get("maxOutputTokens") if isinstance(config, dict) else None
        count = config.get("candidateCount") if isinstance(config, dict) else None
        cap = cap if isinstance(cap, int) and cap > 0 else settings.RELAY_DEFAULT_MAX_TOKENS
        return Usage(prompt, cap * (count if isinstance(count, int) and 0 < count <= MAX_N else 1))
    cap = (body.get("max_completion_tokens") or body.get("max_tokens") or body.get("max_output_tokens")
           or settings.RELAY_DEFAULT_MAX_TOKENS)
    return Usage(prompt, cap * (body.get("n") or 1))


async def screen(snapshots: Snapshots, body: dict[str, Any]) -> None:
    """Refuse a prompt that holds one of the operator's sensitive words (nothing is reserved or sent)."""
    word = (await snapshots.word_filter()).found(body)
    if word is not None:
        raise errors.bad_request(f"The request contains a word this site does not allow: '{word}'.",
                                 code="sensitive_words_detected")


def _known(model: str, prices: dict[str, PriceInfo], upstreams: list[UpstreamInfo]) -> bool:
    """Priced, or offered by an upstream to some group."""
    return model in prices or any(u.groups for u in upstreams_serving(upstreams, model))


async def model_resolve(snapshots: Snapshots, body: dict[str, Any], model: str,
                        operation: str) -> tuple[str, dict[str, Any]]:
    """The model a request is for and the request itself, once a thinking suffix on an unknown name (see
    `relay.model_suffixes`) has become the known model and its protocol's thinking parameter."""
    split = thinking_suffix(model) if operation in SUFFIX_OPERATIONS else None
    if split is None:
        return model, body
    prices, upstreams = await snapshots.prices(), await snapshots.upstreams()
    base, thinking = split
    if _known(model, prices, upstreams) or not _known(base, prices, upstreams):
        return model, body
    return base, with_thinking(body, operation, thinking)


@dataclass
class Route:
    model: str
    price: PriceInfo
    upstreams: list[UpstreamInfo]


async def route(snapshots: Snapshots, ctx: TokenContext, body: dict[str, Any], model: str, pin: str) -> Route:
    if ctx.model_limits and model not in ctx.model_limits:
        raise errors.forbidden(f"This API key may not use the model '{_shown(model)}'.", "model_not_allowed")
    upstreams = await snapshots.upstreams()
    prices = await snapshots.prices()
    if not _known(model, prices, upstreams):
        raise errors.not_found(f"The model '{_shown(model)}' does not exist or is not offered here.")
    price = price_for(prices, model)
    found = candidates(upstreams, model=model, group=ctx.group, provider=pin)
    if not found and pin:  # the caller's choice: a 400 naming it, not an outage
        raise errors.bad_request(f"No upstream of provider '{_shown(pin)}' offers '{_shown(model)}' in group "
                                 f"'{ctx.group}'.", param="provider", code="model_not_supported")
    if not found:
        raise errors.unavailable(f"No upstream is available for '{_shown(model)}' in group '{ctx.group}'.")
    return Route(model=model, price=price, upstreams=found)
