"""Who may do what over HTTP: bearer tokens, run ownership, session ids that can be stored.

The model (docs/web.md, "Access"):

* No token configured (the default; the server binds 127.0.0.1): whoever reaches the port
  may start runs and read any session of the store by its id. Ids of runs started over
  HTTP carry 128 random bits, so knowing one tells nothing about another.
* Tokens configured: every API route needs ``Authorization: Bearer <token>`` (or
  ``?access_token=`` for clients such as ``EventSource`` that cannot set headers), else
  ``401``. Each token is one principal. A run belongs to the token that started it; its
  session, events and cancel route answer only to that token, and the list shows each
  token its own runs. Sessions written by other means (another process, a ``session()``
  block) are readable only with ``share_store=True``.
* Never an existence oracle: a session that does not exist and one the caller may not
  read get the same ``404`` with the same body.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from ..session import _check_sid

__all__ = ["Access", "Unauthorized", "check_sid"]


class Unauthorized(Exception):
    """The request lacks a valid bearer token; the message says how to give one."""


def check_sid(sid: object, where: str = "sid") -> str:
    """Return ``sid`` if the store can keep it exactly; raise ``ValueError`` naming it otherwise
    (the store's own rule, ``session._check_sid``: a NUL would cross sessions)."""
    try:
        return _check_sid(sid, where)
    except TypeError as e:
        raise ValueError(str(e)) from None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Access:
    """The configured tokens; ``principal`` names who is asking (``""`` when open)."""

    def __init__(self, tokens: str | Iterable[str] | None = None, *, share_store: bool = False) -> None:
        if isinstance(tokens, str):
            tokens = [tokens]
        digests = []
        for token in tokens or ():
            if not isinstance(token, str) or len(token) < 8 or any(c.isspace() for c in token):
                raise ValueError(f"token: each bearer token must be a string of at least 8 characters without "
                                 f"spaces, got {token!r}; e.g. secrets.token_urlsafe(32)")
            digests.append(_digest(token))
        self._digests = digests
        self.share_store = bool(share_store)

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def principal(self, authorization: str | None, query_token: str | None) -> str:
        """Return the caller's principal (a digest of its token; ``""`` with no tokens configured).

        Raises ``Unauthorized`` when tokens are configured and none of them was given.
        """
        if not self._digests:
            return ""
        given = None
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                given = value.strip()
        if given is None and query_token:
            given = query_token
        if given is None:
            raise Unauthorized("this server needs a bearer token: send the header 'Authorization: Bearer <token>' "
                               "(or ?access_token=<token> where headers cannot be set)")
        digest = _digest(given)
        # Compare with every configured digest, in constant time each, so timing tells nothing.
        match = ""
        for known in self._digests:
            if hmac.compare_digest(known, digest):
                match = known
        if not match:
            raise Unauthorized("the bearer token is not one this server accepts; check the token the server "
                               "was started with (--token / token=)")
        return match

    def may_read(self, principal: str, owner: str | None) -> bool:
        """May ``principal`` read a session whose run belongs to ``owner`` (``None``: not started here)?"""
        if not self._digests:
            return True
        if owner is None:
            return self.share_store
        return hmac.compare_digest(owner, principal)
