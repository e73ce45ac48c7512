"""Authentication: bearer tokens from a static token file.

The file has Kubernetes' static-token format, one ``token,user,uid,"g1,g2"``
per line. Anonymous requests reach only the health and version endpoints
(kubectl's dispatcher asks for /version before it has picked a build).
"""

from __future__ import annotations

import csv
import hmac
import io
import secrets
from dataclasses import dataclass
from pathlib import Path

from corral.api.errors import Unauthorized

PUBLIC_PATHS = frozenset({"/version", "/healthz", "/livez", "/readyz"})


@dataclass(frozen=True, slots=True)
class User:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()


class TokenAuthenticator:
    def __init__(self, tokens: dict[str, User]) -> None:
        self._tokens = dict(tokens)

    @classmethod
    def from_file(cls, path: Path) -> TokenAuthenticator:
        tokens: dict[str, User] = {}
        for row in csv.reader(io.StringIO(path.read_text())):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 2:
                raise ValueError(f"{path}: each line needs at least token,user")
            groups = tuple(g.strip() for g in row[3].split(",")) if len(row) > 3 and row[3] else ()
            tokens[row[0].strip()] = User(row[1].strip(), row[2].strip() if len(row) > 2 else "", groups)
        return cls(tokens)

    def authenticate(self, authorization: str | None, path: str) -> User | None:
        """The user, or None for an anonymous request to a public path."""
        if authorization and authorization.lower().startswith("bearer "):
            presented = authorization[7:].strip()
            for token, user in self._tokens.items():
                if hmac.compare_digest(token.encode(), presented.encode()):
                    return user
            raise Unauthorized("Unauthorized")
        if path in PUBLIC_PATHS:
            return None
        raise Unauthorized("Unauthorized")


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
