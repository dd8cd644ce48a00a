"""Client requests read into one `Submission` per protocol: what to price, what to send, what it continues."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from relay import errors
from relay.media_tasks.adapters.base import Upload
from relay.media_tasks.models import TaskKind

MJ_CHANGES = {"UPSCALE", "VARIATION", "REROLL"}
MJ_SIMPLE_CHANGE = re.compile(r"(\S+)\s+(?:([UuVv])([1-4])|[Rr])")  # "1320098173412546 U2"
MJ_MODELS = {"SWAP_FACE": "swap_face"}  # the per-call price names that are not mj_<action>
MJ_CUSTOM_ACTIONS = {"upsample": "UPSCALE", "variation": "VARIATION", "low_variation": "LOW_VARIATION",
                     "high_variation": "HIGH_VARIATION", "reroll": "REROLL", "outpaint": "ZOOM",
                     "customzoom": "CUSTOM_ZOOM", "inpaint": "INPAINT"}
KLING_FIELDS = ("negative_prompt", "cfg_scale", "mode", "aspect_ratio", "camera_control", "image_tail", "static_mask",
                "dynamic_masks", "sound")
HOOK_FIELDS = ("notifyHook", "notify_hook", "callback_url")
MAX_VIDEO_SECONDS, MAX_AUDIO_SECONDS = 60, 600
MAX_STORED_STRING = 2_000
# Vendor fields that decide the model, length and mode billed, the task's id, and the vendor's own callback (which
# would bypass the notifyHook checks); `metadata` may carry any other vendor field.
METADATA_RESERVED = frozenset({"model", "model_name", "duration", "seconds", "frames", "mode", "external_task_id",
                               "callback_url", "notify_hook", "notifyHook"})


@dataclass
class Submission:
    kind: str
    action: str
    operation: str
    model: str
    body: dict[str, Any]
    endpoint: str
    units: Decimal = Decimal(1)  # seconds for video and audio, else one call
    size: str = ""
    quality: str = ""
    files: list[Upload] = field(default_factory=list)
    notify_hook: str = ""
    state: str = ""
    parent_id: str = ""  # the public id of the task this one works on
    parent_field: str = ""  # the body field naming it, rewritten to the upstream's id before sending

    def stored_request(self) -> dict[str, Any]:
        """The request as kept on the task: long strings (inline images) shortened."""
        return {k: _shorten(v) for k, v in self.body.items()}


def _shorten(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_STORED_STRING:
        return f"<{len(value)} characters>"
    if isinstance(value, list):
        return [_shorten(v) for v in value]
    if isinstance(value, dict):
        return {k: _shorten(v) for k, v in value.items()}
    return value


def _text(body: dict[str, Any], name: str, *, required: bool = False) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise errors.bad_request(f"'{name}' is required and must be a non-empty string." if required
                                 else f"'{name}' must be a string.", param=name)
    return value.strip()


def _url_parses(url: str) -> bool:
    """A host is named and the port (if any) is a port: what the notifier needs to resolve and connect."""
    try:
        parts = urlsplit(url)
        return bool(parts.hostname) and (parts.port is None or parts.port > 0)
    except ValueError:  # "http://[::1", "http://host:99999"
        return False


def _hook(body: dict[str, Any]) -> str:
    hook = ""
    for name in HOOK_FIELDS:
        value = body.pop(name, None)
        if value not in (None, ""):
            if (not isinstance(value, str) or not value.startswith(("http://", "https://")) or len(value) > 1000
                    or not _url_parses(value)):
                raise errors.bad_request(f"'{name}' must be an http(s) URL of at most 1000 characters.", param=name)
            hook = value
    return hook


def _custom_action(custom_id: str) -> str:
    """Midjourney button ids (`MJ::JOB::upsample::2::<hash>`): the segment after JOB, else the second one."""
    parts = custom_id.split("::")
    segment = parts[2] if len(parts) > 2 and parts[1] == "JOB" else (parts[1] if len(parts) > 1 else "")
    segment = segment.lower()
    if segment.startswith("pan"):
        return "PAN"
    return MJ_CUSTOM_ACTIONS.get(segment, "ACTION")


def _simple_change(body: dict[str, Any]) -> dict[str, Any]:
    """`{content: "<task id> U2"}` (U1-U4, V1-V4, R) as the change every proxy takes."""
    match = MJ_SIMPLE_CHANGE.fullmatch(_text(body, "content", required=True))
    if match is None:
        raise errors.bad_request("'content' must be a task id and U1-U4, V1-V4 or R, e.g. '1320098173412546 U2'.",
                                 param="content")
    task_id, letter, index = match.groups()
    change: dict[str, Any] = {"taskId": task_id, "action": "REROLL"}
    if letter:
        change = {"taskId": task_id, "action": "UPSCALE" if letter in "Uu" else "VARIATION", "index": int(index)}
    return {k: v for k, v in body.items() if k != "content"} | change


def midjourney_submission(operation: str, body: dict[str, Any], endpoint: str) -> Submission:
    """One Midjourney submit; a simple change is sent as the change it names."""
    hook = _hook(body)
    state = body.get("state") if isinstance(body.get("state"), str) else ""
    parent_field = ""
    if operation == "simple-change":
        body, operation = _simple_change(body), "change"
    if operation == "imagine":
        _text(body, "prompt", required=True)
        action = "IMAGINE"
    elif operation == "change":
        _text(body, "taskId", required=True)
        action = str(body.get("action") or "").upper()
        if action not in MJ_CHANGES:
            raise errors.bad_request("'action' must be UPSCALE, VARIATION or REROLL.", param="action")
        index = body.get("index")
        if action != "REROLL" and (isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= 4):
            raise errors.bad_request("'index' must be 1 to 4 for UPSCALE and VARIATION.", param="index")
        parent_field = "taskId"
    elif operation == "action":
        _text(body, "taskId", required=True)
        action = _custom_action(_text(body, "customId", required=True))
        parent_field = "taskId"
    elif operation == "modal":
        _text(body, "taskId", required=True)
        action, parent_field = "MODAL", "taskId"
    elif operation == "blend":
        images = body.get("base64Array")
        if not isinstance(images, list) or not 2 <= len(images) <= 5 or not all(isinstance(i, str) for i in images):
            raise errors.bad_request("'base64Array' must hold 2 to 5 images.", param="base64Array")
        action = "BLEND"
    elif operation == "upload-discord-images":  # images put where Midjourney can read them; answered at once
        images = body.get("base64Array")
        if not isinstance(images, list) or not 1 <= len(images) <= 5 or not all(isinstance(i, str) and i
                                                                                 for i in images):
            raise errors.bad_request("'base64Array' must hold 1 to 5 images.", param="base64Array")
        action = "UPLOAD"
    elif operation == "describe":
        _text(body, "base64", required=True)
        action = "DESCRIBE"
    elif operation == "shorten":
        _text(body, "prompt", required=True)
        action = "SHORTEN"
    elif operation == "swap_face":
        _text(body, "sourceBase64", required=True)
        _text(body, "targetBase64", required=True)
        action = "SWAP_FACE"
    else:
        raise errors.not_found(f"Unknown Midjourney operation: {operation}", code="unknown_url")
    model = MJ_MODELS.get(action, f"mj_{action.lower()}")
    return Submission(kind=TaskKind.MIDJOURNEY, action=action, operation=operation, model=model,
                      body=body, endpoint=endpoint, notify_hook=hook, state=state[:1000],
                      parent_id=str(body.get(parent_field) or "") if parent_field else "", parent_field=parent_field)


def suno_submission(operation: str, body: dict[str, Any], endpoint: str) -> Submission:
    operation = operation.lower()
    hook = _hook(body)
    if operation == "lyrics":
        _text(body, "prompt", required=True)
        return Submission(kind=TaskKind.MUSIC, action="LYRICS", operation="lyrics", model="suno_lyrics", body=body,
                          endpoint=endpoint, notify_hook=hook)
    if operation != "music":
        raise errors.bad_request("The Suno action must be 'music' or 'lyrics'.", param="action")
    if not _text(body, "prompt") and not _text(body, "gpt_description_prompt"):
        raise errors.bad_request("'prompt' (lyrics) or 'gpt_description_prompt' is required.", param="prompt")
    if body.get("continue_clip_id") and not body.get("task_id"):
        raise errors.bad_request("'task_id' is required with 'continue_clip_id'.", param="task_id")
    model = _text(body, "model") or "suno_music"
    return Submission(kind=TaskKind.MUSIC, action="MUSIC", operation="music", model=model, body=body,
                      endpoint=endpoint, notify_hook=hook, parent_id=str(body.get("task_id") or ""),
                      parent_field="task_id" if body.get("task_id") else "")


def music_submission(body: dict[str, Any], endpoint: str) -> Submission:
    """`POST /v1/music/generations`: description mode, or custom mode when lyrics are given."""
    prompt = _text(body, "prompt", required=True)
    hook = _hook(body)
    lyrics = _text(body, "lyrics")
    suno: dict[str, Any] = {"prompt": prompt, "make_instrumental": bool(body.get("make_instrumental", False))}
    if lyrics:
        suno.update(prompt=lyrics, description=prompt)
    else:
        suno["gpt_description_prompt"] = prompt
    for name in ("tags", "title", "mv"):
        if _text(body, name):
            suno[name] = body[name]
    return Submission(kind=TaskKind.MUSIC, action="MUSIC", operation="music",
                      model=_text(body, "model") or "suno_music", body=suno, endpoint=endpoint, notify_hook=hook)


def _seconds(body: dict[str, Any], names: tuple[str, ...], default: int, maximum: int) -> int:
    for name in names:
        value = body.get(name)
        if value in (None, ""):
            continue
        try:
            seconds = int(str(value)) if not isinstance(value, bool) else -1
        except ValueError:
            seconds = -1
        if not 1 <= seconds <= maximum:
            raise errors.bad_request(f"'{name}' must be a whole number of seconds from 1 to {maximum}.", param=name)
        return seconds
    return default


def video_submission(body: dict[str, Any], endpoint: str, files: list[Upload] | None = None) -> Submission:
    """`/v1/video/generations` and `/v1/videos`: text to video, or image to video when an image is given."""
    model = _text(body, "model", required=True)
    prompt = _text(body, "prompt", required=True)
    hook = _hook(body)
    images = body.get("images") if isinstance(body.get("images"), list) else []
    image = next((v for v in (body.get("image"), body.get("image_url"), body.get("input_reference"), *images)
                  if isinstance(v, str) and v), "")
    seconds = _seconds(body, ("seconds", "duration"), 4 if model.startswith("sora") else 5, MAX_VIDEO_SECONDS)
    size = _text(body, "size") or _text(body, "resolution")
    mode = _text(body, "mode")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise errors.bad_request("'metadata' must be an object.", param="metadata")
    overriding = sorted(set(metadata or {}) & METADATA_RESERVED)
    if overriding:  # merged verbatim into the vendor's payload (protocols.md 9.1), so it could change the price
        raise errors.bad_request(f"'metadata' may not set {', '.join(overriding)}: the relay sets what it bills "
                                 "by and where callbacks go.", param="metadata")
    video: dict[str, Any] = {"prompt": prompt, "seconds": seconds}
    for name, value in (("image", image), ("size", size), ("mode", mode), ("metadata", metadata)):
        if value:
            video[name] = value
    for name in ("aspect_ratio", "negative_prompt", "cfg_scale", "camera_control", "image_tail"):
        if body.get(name) not in (None, ""):
            video[name] = body[name]
    operation = "image2video" if image or files else "text2video"
    return Submission(kind=TaskKind.VIDEO, action=operation, operation=operation, model=model, body=video,
                      endpoint=endpoint, units=Decimal(seconds), size=size, quality=mode, files=files or [],
                      notify_hook=hook)


def video_remix_submission(parent: Any, body: dict[str, Any], endpoint: str) -> Submission:
    """`POST /v1/videos/{id}/remix`: the caller's finished video made again with a new prompt, at the same upstream,
    model, length and size (and priced like them)."""
    prompt = _text(body, "prompt", required=True)
    kept = parent.request or {}
    seconds = int(kept.get("seconds") or parent.units)
    video: dict[str, Any] = {"prompt": prompt, "seconds": seconds, "video_id": parent.public_id,
                             "remixed_from_video_id": parent.public_id}
    size = str(kept.get("size") or "")
    if size:
        video["size"] = size
    return Submission(kind=TaskKind.VIDEO, action="remix", operation="remix", model=parent.model, body=video,
                      endpoint=endpoint, units=Decimal(seconds), size=size, quality=str(kept.get("mode") or ""),
                      parent_id=parent.public_id, parent_field="video_id")


def kling_submission(operation: str, body: dict[str, Any], endpoint: str) -> Submission:
    """Kling's own format (`/kling/v1/videos/text2video|image2video`, protocols.md 9.2): `model_name`, `duration` as
    a string, `callback_url`; its `external_task_id` is kept as the task's state."""
    model = _text(body, "model_name") or _text(body, "model") or "kling-v1"
    prompt = _text(body, "prompt", required=operation == "text2video")
    hook = _hook(body)
    image = _text(body, "image", required=operation == "image2video")
    external_id = _text(body, "external_task_id")
    seconds = _seconds(body, ("duration",), 5, MAX_VIDEO_SECONDS)
    video: dict[str, Any] = {"prompt": prompt, "seconds": seconds}
    if image:
        video["image"] = image
    for name in KLING_FIELDS:
        if body.get(name) not in (None, ""):
            video[name] = body[name]
    mode = _text(body, "mode").lower()
    if mode not in ("", "std", "pro"):
        raise errors.bad_request("'mode' must be std or pro.", param="mode")
    if mode:
        video["mode"] = mode  # priced by it, so sent as priced
    return Submission(kind=TaskKind.VIDEO, action=operation, operation=operation, model=model, body=video,
                      endpoint=endpoint, units=Decimal(seconds), quality=mode, notify_hook=hook,
                      state=external_id[:1000])


def audio_submission(body: dict[str, Any], endpoint: str) -> Submission:
    """`POST /v1/audio/generations`: sound or music from a prompt, priced per second of audio."""
    model = _text(body, "model", required=True)
    prompt = _text(body, "prompt", required=True)
    hook = _hook(body)
    seconds = _seconds(body, ("duration", "seconds"), 30, MAX_AUDIO_SECONDS)
    audio_format = _text(body, "format") or "mp3"
    if audio_format not in {"mp3", "wav", "flac", "ogg", "aac"}:
        raise errors.bad_request("'format' must be mp3, wav, flac, ogg or aac.", param="format")
    return Submission(kind=TaskKind.AUDIO, action="GENERATE", operation="audio", model=model,
                      body={"prompt": prompt, "seconds": seconds, "format": audio_format}, endpoint=endpoint,
                      units=Decimal(seconds), notify_hook=hook)
