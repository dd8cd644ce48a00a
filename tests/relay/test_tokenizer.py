"""Offline token counts: what bpe-openai's own encoder counts, for prompts of any length, without loading the
package's Python layer (every encoding's ranks read into dicts at import)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import bpe_openai
import openai
from hypothesis import HealthCheck, given, settings, strategies as st

from billing.models import UsageLog
from relay.tokenizer import count_text, estimate_prompt
from tests.support import settled

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["", "hello world", "你好，世界！这是一个测试。", "def f(x):\n    return x ** 2\n",
         "🙂 emoji <|endoftext|> named", "mixed 123 4567 89.0 ...!!!", "  spaces  \n\n\t", "a" * 5000,
         "lone \ud800 surrogate \udfff"]


def package_count(text: str) -> int:
    return len(bpe_openai.get_encoding("o200k_base").encode_ordinary(text))


def test_counts_agree_with_the_packages_encoder():
    for text in TEXTS:
        assert count_text(text) == package_count(text), text


@settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(max_size=300))
def test_any_text_is_counted_as_the_package_counts_it(text):
    assert count_text(text) == package_count(text)


def test_prompts_past_the_packages_limits_are_counted():
    """The package's encoder refuses a million characters, or 200,000 tokens; long-context models take more."""
    assert count_text("ab " * 400_000) == 400_001
    assert count_text("x " * 600_000) > 200_000
    assert estimate_prompt({"messages": [{"role": "user", "content": "word " * 300_000}]}, "chat/completions") > 300_000


def test_counting_leaves_the_packages_python_layer_unloaded():
    code = ("import sys; from relay.tokenizer import count_text; assert count_text('hello world') == 2; "
            "print('bpe_openai' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={"PYTHONPATH": f"{ROOT}:{ROOT / 'platform'}", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_a_prompt_of_a_million_characters_is_answered_and_billed(live, bootstrap_demo, funded_key):
    _user, key = funded_key(balance=100_000_000)
    content = "lorem ipsum dolor sit amet " * 50_000  # 1.35 million characters
    client = openai.OpenAI(api_key=key, base_url=live.url + "/v1", max_retries=0, timeout=60)
    reply = client.chat.completions.create(model="demo-chat", messages=[{"role": "user", "content": content}],
                                           max_tokens=8)
    assert reply.usage.prompt_tokens > 250_000
    assert settled(lambda: UsageLog.objects.filter(prompt_tokens=reply.usage.prompt_tokens, quota__gt=0).exists())
