"""OpenAPI description of the management API's bearer access tokens (found by drf-spectacular once imported)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object


class AccessTokenScheme(OpenApiAuthenticationExtension):
    """`Authorization: Bearer <access token>`, the token a user issues at `GET /api/user/token`."""

    target_class = "accounts.authentication.AccessTokenAuthentication"
    name = "accessToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Bearer")
