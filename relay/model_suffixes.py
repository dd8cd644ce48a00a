"""Thinking suffixes on model names: `claude-sonnet-4-5-thinking`, `gemini-2.5-flash-nothinking`, `o4-mini-high`.

Chat clients that can only pick a model name (no reasoning setting in their UI) ask for thinking this way, as they
do on other gateways. A suffix counts only when the full name is not a model of its own here and the name without it
is: the request is then for that model, with the suffix turned into the client protocol's own thinking parameter,
which every wire already carries across formats.

- `-thinking`: thinking on (Anthropic: 80% of max_tokens as the budget, at least 1024; Gemini: thoughts included,
  the model's own budget; OpenAI formats: effort "medium").
- `-thinking-<N>`: thinking on with a budget of N tokens (OpenAI formats: the nearest effort).
- `-nothinking`: thinking off.
- `-minimal`, `-low`, `-medium`, `-high`: that reasoning effort (Anthropic and Gemini: the budgets Gemini's own
  OpenAI-compatible endpoint gives them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

SUFFIX = re.compile(
    r"^(?P<base>.+?)-(?:thinking(?:-(?P<budget>\d{1,7}))?|(?P<off>nothinking)|(?P<effort>minimal|low|medium|high))$"
)
EFFORT_BUDGETS = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
ANTHROPIC_MIN_BUDGET = 1024  # Anthropic refuses smaller budgets, and budgets not below max_tokens
ANTHROPIC_BUDGET_SHARE = 0.8
OPERATIONS = frozenset({"chat/completions", "responses", "messages", "generateContent"})


@dataclass(frozen=True)
class Thinking:
    on: bool
    budget: int | None = None  # tokens, when the name gave them (or an effort implies them)
    effort: str | None = None  # OpenAI's word for it

    @property
    def openai_effort(self) -> str:
        if not self.on:
            return "none"
        if self.effort:
            return self.effort
        if self.budget is None:
            return "medium"
        return "low" if self.budget <= 1024 else "medium" if self.budget <= 8192 else "high"


def thinking_suffix(model: str) -> tuple[str, Thinking] | None:
    """The model name without its thinking suffix, and what the suffix asks; None when it has none."""
    match = SUFFIX.match(model)
    if match is None:
        return None
    if match["off"]:
        return match["base"], Thinking(on=False)
    if match["effort"]:
        effort = match["effort"]
        return match["base"], Thinking(on=True, budget=EFFORT_BUDGETS[effort], effort=effort)
    budget = int(match["budget"]) if match["budget"] else None
    return match["base"], Thinking(on=budget != 0, budget=budget)


def _anthropic(body: dict[str, Any], thinking: Thinking) -> dict[str, Any]:
    out = dict(body)
    if not thinking.on or thinking.effort == "minimal":
        out.pop("thinking", None)
        return out
    max_tokens = body["max_tokens"]
    budget = thinking.budget or int(max_tokens * ANTHROPIC_BUDGET_SHARE)
    budget = max(budget, ANTHROPIC_MIN_BUDGET)
    if budget >= max_tokens:  # the budget is part of max_tokens: keep the room the caller asked for the answer
        out["max_tokens"] = budget + max_tokens
    out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    for name in ("temperature", "top_p", "top_k"):  # Anthropic accepts none of them changed with thinking on
        out.pop(name, None)
    return out


def _gemini(body: dict[str, Any], thinking: Thinking) -> dict[str, Any]:
    key = "generation_config" if "generation_config" in body else "generationConfig"
    config = body.get(key) if isinstance(body.get(key), dict) else {}
    if not thinking.on:
        settings: dict[str, Any] = {"thinkingBudget": 0}
    else:
        settings = {"includeThoughts": True}
        if thinking.budget is not None:
            settings["thinkingBudget"] = thinking.budget
    return dict(body, **{key: dict(config, thinkingConfig=settings)})


def with_thinking(body: dict[str, Any], operation: str, thinking: Thinking) -> dict[str, Any]:
    """The client's request (in its own protocol) asking for what the suffix asked."""
    if operation == "messages":
        return _anthropic(body, thinking)
    if operation == "generateContent":
        return _gemini(body, thinking)
    if operation == "responses":
        reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else {}
        return dict(body, reasoning=dict(reasoning, effort=thinking.openai_effort))
    return dict(body, reasoning_effort=thinking.openai_effort)
