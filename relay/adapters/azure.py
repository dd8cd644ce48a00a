"""Azure OpenAI (classic API): the deployment is in the path, `api-version` in the query, the key in `api-key`."""

from __future__ import annotations

from urllib.parse import quote

from relay.adapters.base import Call
from relay.adapters.openai import OpenAIAdapter

DEFAULT_API_VERSION = "2024-10-21"


class AzureAdapter(OpenAIAdapter):
    """Speaks OpenAI's wire format; only the address and the key header differ.

    Upstream settings (`extras`): `api_version`, and `deployments` mapping model names to deployment names (by
    default the deployment is named after the model, after the upstream's model mapping).
    """

    family = "azure"

    def url(self, call: Call) -> str:
        extras = call.upstream.extras
        deployment = (extras.get("deployments") or {}).get(call.model, call.model)
        version = extras.get("api_version") or DEFAULT_API_VERSION
        base = call.upstream.base_url.removesuffix("/openai")
        return f"{base}/openai/deployments/{quote(deployment, safe='')}/{call.operation}?api-version={quote(version)}"

    def headers(self, call: Call) -> dict[str, str]:
        return {"content-type": call.content_type, "api-key": call.key}
