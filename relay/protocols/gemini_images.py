"""Images in Gemini answers for OpenAI chat clients (image models such as gemini-2.5-flash-image). Pure.

OpenAI's chat format has no image output, so an image part reaches the client as a Markdown image with a data URL,
which chat front-ends render. When the client sends the conversation back, those images become image parts again:
as text they would cost a token per few characters of base64.
"""

from __future__ import annotations

import re
from typing import Any

MARKDOWN_IMAGE = re.compile(r"!\[[^\]\n]{0,200}\]\(data:(image/[\w.+-]+);base64,([A-Za-z0-9+/=]+)\)")
MODALITIES = {"text": "TEXT", "image": "IMAGE", "audio": "AUDIO"}


def inline_image(part: dict[str, Any]) -> tuple[str, str] | None:
    """(mime type, base64) of an `inlineData` image part that is not a draft (`thought`); None for other parts."""
    inline = part.get("inlineData") or part.get("inline_data")
    if part.get("thought") is True or not isinstance(inline, dict):
        return None
    mime = inline.get("mimeType") or inline.get("mime_type")
    data = inline.get("data")
    if not isinstance(mime, str) or not mime.startswith("image/") or not isinstance(data, str) or not data:
        return None
    return mime, data


def image_markdown(part: dict[str, Any]) -> str | None:
    """An image part as Markdown with a data URL; None for parts that are not images."""
    image = inline_image(part)
    return f"![image](data:{image[0]};base64,{image[1]})" if image else None


def answer_images(response: dict[str, Any]) -> list[str]:
    """The base64 images in a GenerateContentResponse, every candidate's, in order."""
    images = []
    candidates = response.get("candidates")
    for candidate in candidates if isinstance(candidates, list) else []:
        content = candidate.get("content") if isinstance(candidate, dict) else None
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else []:
            image = inline_image(part) if isinstance(part, dict) else None
            if image:
                images.append(image[1])
    return images


def answer_words(response: dict[str, Any]) -> str:
    """The text a GenerateContentResponse answered with (thoughts left out): why an image model made none."""
    words = []
    for candidate in response.get("candidates") if isinstance(response.get("candidates"), list) else []:
        content = candidate.get("content") if isinstance(candidate, dict) else None
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str) and not part.get("thought"):
                words.append(part["text"])
    return " ".join(words)


def text_parts(text: str) -> list[dict[str, Any]]:
    """Text as Gemini parts, its Markdown data-URL images as `inlineData` parts."""
    if "](data:image/" not in text:
        return [{"text": text}] if text else []
    parts: list[dict[str, Any]] = []
    position = 0
    for match in MARKDOWN_IMAGE.finditer(text):
        before = text[position:match.start()]
        if before.strip():
            parts.append({"text": before})
        parts.append({"inlineData": {"mimeType": match[1], "data": match[2]}})
        position = match.end()
    if text[position:].strip():
        parts.append({"text": text[position:]})
    return parts


def response_modalities(body: dict[str, Any], model: str) -> list[str] | None:
    """Gemini's responseModalities for an OpenAI request: its `modalities` when given, else text and image for an
    image model (its name says so), else None (the model's default)."""
    asked = body.get("modalities")
    if isinstance(asked, list):
        wanted = [MODALITIES[m] for m in asked if isinstance(m, str) and m in MODALITIES]
        return wanted or None
    name = model.lower().rsplit("/", 1)[-1]
    if "image" in name and not name.startswith("imagen"):
        return ["TEXT", "IMAGE"]
    return None
