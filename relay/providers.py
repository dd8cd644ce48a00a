"""The upstream provider types an operator can configure, with their default base URL and wire family."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Provider:
    key: str
    label: str
    family: str  # which adapter speaks to it: openai, anthropic, gemini, azure, vertex, bedrock, rerank, task, demo
    default_base_url: str
    api_prefix: str = "/v1"  # joined between the base URL and the operation path (`/chat/completions`)
    native_responses: bool = False  # offers /responses; others serve it through chat (upstream extras override)


PROVIDERS: dict[str, Provider] = {
    p.key: p
    for p in [
        Provider("demo", "Demo (built in, no network)", "demo", ""),
        Provider("openai", "OpenAI", "openai", "https://api.openai.com", native_responses=True),
        Provider("deepseek", "DeepSeek", "openai", "https://api.deepseek.com"),
        Provider("ali", "Alibaba Qwen (DashScope compatible mode)", "openai", "https://dashscope.aliyuncs.com/compatible-mode"),
        Provider("volc", "Volcengine Ark (Doubao)", "openai", "https://ark.cn-beijing.volces.com/api/v3", ""),
        Provider("tencent", "Tencent Hunyuan", "openai", "https://api.hunyuan.cloud.tencent.com"),
        Provider("moonshot", "Moonshot (Kimi)", "openai", "https://api.moonshot.cn"),
        Provider("zhipu", "Zhipu GLM", "openai", "https://open.bigmodel.cn/api/paas/v4", ""),
        Provider("mistral", "Mistral", "openai", "https://api.mistral.ai"),
        Provider("xai", "xAI (Grok)", "openai", "https://api.x.ai"),
        Provider("openrouter", "OpenRouter", "openai", "https://openrouter.ai/api"),
        Provider("siliconflow", "SiliconFlow", "openai", "https://api.siliconflow.cn"),
        Provider("groq", "Groq", "openai", "https://api.groq.com/openai"),
        Provider("ollama", "Ollama", "openai", "http://127.0.0.1:11434"),
        Provider("vllm", "vLLM", "openai", "http://127.0.0.1:8000"),
        Provider("custom", "Custom OpenAI-compatible", "openai", ""),
        Provider("anthropic", "Anthropic", "anthropic", "https://api.anthropic.com"),
        Provider("gemini", "Google Gemini (AI Studio)", "gemini", "https://generativelanguage.googleapis.com"),
        Provider("vertex", "Google Vertex AI (Gemini, Claude)", "vertex", "https://{region}-aiplatform.googleapis.com"),
        Provider("bedrock", "Amazon Bedrock (Claude)", "bedrock", "https://bedrock-runtime.{region}.amazonaws.com"),
        Provider("azure", "Azure OpenAI", "azure", "", native_responses=True),
        Provider("cohere", "Cohere", "rerank", "https://api.cohere.com"),
        Provider("jina", "Jina", "rerank", "https://api.jina.ai"),
        Provider("midjourney", "Midjourney proxy", "task", ""),
        Provider("suno", "Suno API", "task", ""),
        Provider("kling", "Kling", "task", "https://api-singapore.klingai.com"),
        Provider("jimeng", "Jimeng (Volcengine visual)", "task", "https://visual.volcengineapi.com"),
    ]
}

PROVIDER_CHOICES = [(p.key, p.label) for p in PROVIDERS.values()]


def provider_get(key: str) -> Provider:
    return PROVIDERS[key]
