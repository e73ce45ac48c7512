"""corral.store: the revisioned, watchable key-value store under the API.

:func:`open_store` turns a store URL from the command line or config into a
backend. ``sqlite:///abs/path.db`` (or a plain path) is the embedded store;
``etcd://h1:2379,h2:2379,h3:2379[/root]`` is the HA backend on an etcd
cluster (see :mod:`corral.store.etcd`).
"""

from __future__ import annotations

from urllib.parse import parse_qs

from corral.store.protocol import Store

__all__ = ["Store", "open_store"]

_SQLITE_OPTIONS = ("history_limit", "ring_size", "watch_buffer", "max_batch")


def open_store(url: str) -> Store:
    """A not-yet-started store for ``url``; call ``await store.start()``.

    ``sqlite://`` URLs take integer query options named like the
    :class:`~corral.store.sqlite.SqliteStore` keywords, e.g.
    ``sqlite:///var/lib/corral/state.db?history_limit=50000``.
    """
    if not isinstance(url, str) or not url:
        raise ValueError(f"store url: must be a non-empty string, got {url!r}")
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "sqlite", url
    scheme = scheme.lower()
    if scheme == "sqlite":
        return _open_sqlite(url, rest)
    if scheme in ("etcd", "etcds"):
        from corral.store.etcd import EtcdStore

        return EtcdStore(url)
    raise ValueError(f"store url {url!r}: unknown scheme {scheme!r} (expected sqlite:// or etcd://)")


def _open_sqlite(url: str, rest: str) -> Store:
    from corral.store.sqlite import SqliteStore

    path, _, query = rest.partition("?")
    if not path:
        raise ValueError(f"store url {url!r}: no database path")
    options: dict[str, int] = {}
    for name, values in parse_qs(query, keep_blank_values=True, strict_parsing=False).items():
        if name not in _SQLITE_OPTIONS:
            raise ValueError(
                f"store url {url!r}: unknown option {name!r} (known: {', '.join(_SQLITE_OPTIONS)})"
            )
        try:
            options[name] = int(values[-1])
        except ValueError as exc:
            raise ValueError(
                f"store url {url!r}: option {name!r} must be an integer, got {values[-1]!r}"
            ) from exc
    return SqliteStore(path, **options)
