"""Authentication: who is asking.

Four ways in, tried in order: a client certificate signed by the cluster
CA (CN = user, O = groups, as Kubernetes reads them), a static bearer token
from the token file (Kubernetes' ``token,user,uid,"g1,g2"`` format), a
ServiceAccount JWT issued through the TokenRequest API, and a bootstrap
(join) token ``<id>.<secret>`` checked against the Secret
``kube-system/bootstrap-token-<id>`` (``corral token create``), which only
lets a new agent ask for its node certificate. Every authenticated
user is in ``system:authenticated``. Anonymous requests reach only the
health and version endpoints (kubectl asks for /version before it has
picked a build); everything else is a 401.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.api.errors import Unauthorized

BOOTSTRAP_GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")
PUBLIC_PATHS = frozenset({"/version", "/healthz", "/livez", "/readyz"})
AUTHENTICATED = "system:authenticated"
SA_RECHECK_SECONDS = 10.0
MAX_CACHED_TOKENS = 10000
RELOAD_SECONDS = 1.0

UidLookup = Callable[[str, str, str], Awaitable[str | None]]
"""(plural, namespace, name) → the object's uid, or None if it does not exist."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()

    def with_authenticated(self) -> User:
        if AUTHENTICATED in self.groups:
            return self
        return User(self.name, self.uid, (*self.groups, AUTHENTICATED))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class TokenAuthenticator:
    """Static bearer tokens. Looked up by SHA-256 so the time a look-up takes
    says nothing about how close a guess came."""

    def __init__(self, tokens: dict[str, User], path: Path | None = None, reload_seconds: float = RELOAD_SECONDS) -> None:
        self._tokens = {_digest(t): u.with_authenticated() for t, u in tokens.items()}
        self._path = path
        self._mtime = path.stat().st_mtime_ns if path is not None and path.exists() else 0
        self._checked = time.monotonic()
        self.reload_seconds = reload_seconds

    @classmethod
    def from_file(cls, path: Path) -> TokenAuthenticator:
        return cls(read_token_file(path), path)

    def lookup(self, token: str) -> User | None:
        self._maybe_reload()
        return self._tokens.get(_digest(token))

    def _maybe_reload(self) -> None:
        """Pick up tokens added to (or removed from) the file while the server
        runs (``corral token create``); looked at no more than once a second."""
        now = time.monotonic()
        if self._path is None or now - self._checked < self.reload_seconds:
            return
        self._checked = now
        try:
            mtime = self._path.stat().st_mtime_ns
            if mtime == self._mtime:
                return
            tokens = read_token_file(self._path)
        except (OSError, ValueError):
            return  # keep serving with the tokens we have; a half-written file is retried
        self._tokens = {_digest(t): u.with_authenticated() for t, u in tokens.items()}
        self._mtime = mtime

    def authenticate(self, authorization: str | None, path: str) -> User | None:
        """The user, or None for an anonymous request to a public path."""
        token = bearer_token(authorization)
        if token is not None:
            user = self.lookup(token)
            if user is None:
                raise Unauthorized("Unauthorized")
            return user
        if path in PUBLIC_PATHS:
            return None
        raise Unauthorized("Unauthorized")


def read_token_file(path: Path) -> dict[str, User]:
    tokens: dict[str, User] = {}
    for row in csv.reader(io.StringIO(path.read_text())):
        if not row or row[0].startswith("#"):
            continue
        if len(row) < 2:
            raise ValueError(f"{path}: each line needs at least token,user")
        groups = tuple(g.strip() for g in row[3].split(",")) if len(row) > 3 and row[3] else ()
        tokens[row[0].strip()] = User(row[1].strip(), row[2].strip() if len(row) > 2 else "", groups)
    return tokens


def bearer_token(authorization: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


def user_from_peercert(cert: Any) -> User | None:
    """A verified client certificate's subject: CN is the user, each O a group."""
    if not cert:
        return None
    name, groups = "", []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                name = value
            elif key == "organizationName":
                groups.append(value)
    return User(name, "", tuple(groups)).with_authenticated() if name else None


class Authenticator:
    """Certificates, static tokens and ServiceAccount tokens, in that order."""

    def __init__(self, tokens: TokenAuthenticator, signer: Any = None,
                 lookup_uid: UidLookup | None = None, audiences: tuple[str, ...] = (),
                 bootstrap_secret: Callable[[str], Awaitable[dict[str, Any] | None]] | None = None,
                 recheck_seconds: float = SA_RECHECK_SECONDS) -> None:
        self.tokens = tokens
        self.signer = signer
        self.lookup_uid = lookup_uid
        self.audiences = audiences
        self.bootstrap_secret = bootstrap_secret
        self.recheck_seconds = recheck_seconds
        """token id → the kube-system bootstrap-token Secret, or None."""
        self._sa_cache: OrderedDict[str, tuple[User, float, int]] = OrderedDict()

    async def authenticate(self, authorization: str | None, path: str, peercert: Any = None) -> User | None:
        token = bearer_token(authorization)
        if token is None:
            user = user_from_peercert(peercert)
            if user is not None:
                return user
            if path in PUBLIC_PATHS:
                return None
            raise Unauthorized("Unauthorized")
        user = self.tokens.lookup(token)
        if user is None and self.signer is not None and token.count(".") == 2:
            user = await self._service_account(token)
        if user is None and self.bootstrap_secret is not None and token.count(".") == 1:
            user = await self._bootstrap(token)
        if user is None:
            raise Unauthorized("Unauthorized")
        return user

    async def _service_account(self, token: str) -> User | None:
        from corral.api.satoken import TokenInvalid

        now = time.time()
        cached = self._sa_cache.get(token)
        if cached is not None:
            user, recheck, expires = cached
            if now < expires and now < recheck:
                return user
            self._sa_cache.pop(token, None)
        try:
            claims = self.signer.verify(token, int(now), self.audiences) if self.audiences \
                else self.signer.verify(token, int(now))
        except TokenInvalid:
            return None
        if not await self._still_bound(claims):
            return None
        groups = ("system:serviceaccounts", f"system:serviceaccounts:{claims.namespace}")
        user = User(claims.username, claims.uid, groups).with_authenticated()
        self._sa_cache[token] = (user, now + self.recheck_seconds, claims.expires)
        if len(self._sa_cache) > MAX_CACHED_TOKENS:
            self._sa_cache.popitem(last=False)
        return user

    async def _bootstrap(self, token: str) -> User | None:
        """A join token (Kubernetes' bootstrap token): lets a new agent ask
        for its node certificate, nothing else."""
        from datetime import UTC, datetime

        from corral.api.certs import BOOTSTRAP_GROUP, TOKEN_RE, check_bootstrap_secret

        match = TOKEN_RE.match(token)
        if match is None or self.bootstrap_secret is None:
            return None
        token_id, token_secret = match.groups()
        secret = await self.bootstrap_secret(token_id)
        if secret is None or not check_bootstrap_secret(secret, token_secret, datetime.now(UTC)):
            return None
        data = secret.get("data") or {}
        if _b64_text(data.get("token-id")) != token_id:
            return None
        return User(f"system:bootstrap:{token_id}", "",
                    (BOOTSTRAP_GROUP, *bootstrap_extra_groups(data))).with_authenticated()

    async def _still_bound(self, claims: Any) -> bool:
        """A token dies with its ServiceAccount, and with the Pod or Secret it
        is bound to (the same name with another uid is another object)."""
        if self.lookup_uid is None:
            return True
        if await self.lookup_uid("serviceaccounts", claims.namespace, claims.name) != claims.uid:
            return False
        if claims.pod_name and \
                await self.lookup_uid("pods", claims.namespace, claims.pod_name) != claims.pod_uid:
            return False
        if claims.secret_name and \
                await self.lookup_uid("secrets", claims.namespace, claims.secret_name) != claims.secret_uid:
            return False
        return True


def _b64_text(value: Any) -> str:
    import base64
    import binascii

    try:
        return base64.b64decode(value or "", validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError, TypeError):
        return ""


def bootstrap_extra_groups(data: dict[str, Any]) -> tuple[str, ...]:
    """``auth-extra-groups`` of a bootstrap-token Secret; as in Kubernetes, only
    groups under ``system:bootstrappers:`` count (a token can never claim
    ``system:masters``)."""
    out = []
    for group in _b64_text(data.get("auth-extra-groups")).split(","):
        group = group.strip()
        if BOOTSTRAP_GROUP_RE.match(group):
            out.append(group)
    return tuple(out)


def ensure_token_file(path: Path, user: str = "admin", groups: str = "system:masters") -> str:
    """Create the token file with one admin token if it is missing; return the
    first token in it."""
    if not path.exists():
        token = secrets.token_urlsafe(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'{token},{user},{user},"{groups}"\n')
        path.chmod(0o600)
    first = next(csv.reader(io.StringIO(path.read_text())))
    return first[0].strip()
