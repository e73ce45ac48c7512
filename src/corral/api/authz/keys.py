"""Keys under which the server keeps who is asking and who decides."""

from __future__ import annotations

from typing import Any

from aiohttp import web

USER_KEY = web.RequestKey("user", object)
"""The authenticated :class:`~corral.api.auth.User`, or None on public paths."""
AUTHZ_KEY: web.AppKey[Any] = web.AppKey("authorizer", object)
"""The :class:`~corral.api.authz.chain.Authorizer` of this server."""
SIGNER_KEY: web.AppKey[Any] = web.AppKey("token-signer", object)
"""The :class:`~corral.api.satoken.TokenSigner` that issues ServiceAccount tokens."""
