"""What the Hub stand-in logs and answers: a request as the server saw it, and a response with the Hub's headers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Request:
    """One request as the server saw it; `path` is unquoted, without the query."""

    server: str  # "hub" or "cdn"
    method: str
    path: str
    query: dict[str, str]
    authorized: bool
    status: int
    expected: bool  # False for a URL or method the Hub stand-in does not serve
    body: bytes = field(default=b"", repr=False)  # what was POSTed or PUT (weights too: kept out of repr)


@dataclass
class _Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    expected: bool = True
    delay: float = 0.0  # seconds the server waits before answering (an injected timeout)
    drop: bool = False  # the connection is closed half-way through the body (an injected dropped connection)


@dataclass
class Fault:
    """An injected failure: the next `times` requests of `method` whose path matches `path` (a regex) answer 500,
    stall for `delay` seconds ("timeout"), or lose their connection half-way through the body ("drop")."""

    method: str
    path: str
    kind: str
    times: int = 1
    delay: float = 30.0


def _json(status: int, payload, **headers: str) -> _Response:
    return _Response(
        status, {"Content-Type": "application/json; charset=utf-8", **headers}, json.dumps(payload).encode()
    )


def _error(status: int, code: str | None, message: str, **headers: str) -> _Response:
    if code is not None:
        headers = {"X-Error-Code": code, **headers}
    return _json(status, {"error": message}, **{"X-Error-Message": message, **headers})
