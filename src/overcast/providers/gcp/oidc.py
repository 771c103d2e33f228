"""Verify the Google-signed OIDC token a Pub/Sub push or Eventarc delivery carries.

A push subscription with ``--push-auth-service-account`` sends
``Authorization: Bearer <JWT>``: an RS256 token issued by ``https://accounts.google.com``
for the audience the subscription names (the endpoint URL unless set), with the service
account in ``email``. The signature is checked against Google's published keys (a
JWKS, fetched once and again when a token names a key not seen yet); tests pass their
own keys.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ...errors import PermissionDenied

__all__ = ["GOOGLE_ISSUERS", "GOOGLE_JWKS_URL", "GoogleOIDCVerifier", "Unauthorized"]

GOOGLE_JWKS_URL = "https://www.googleapis.com/oauth2/v3/certs"
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")


class Unauthorized(PermissionDenied):
    """The delivery's token is missing, malformed, expired or not for us."""


def _fetch(url: str) -> Mapping[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        document: Mapping[str, Any] = json.loads(response.read())
    return document


class GoogleOIDCVerifier:
    """Checks ``Authorization: Bearer`` tokens; :meth:`verify` returns the claims.

    Args:
        audience: the audiences accepted (the push endpoint URL, or what the subscription set).
        emails: service accounts allowed to push (any verified one when empty).
        jwks: the keys, as a JWKS document; Google's are fetched from ``jwks_url`` when None.
        jwks_url: where the keys live.
        issuers: accepted ``iss`` values.
        leeway: seconds of clock skew tolerated on ``exp``/``iat``.
        min_refresh: seconds between two fetches of the keys, however many unknown ``kid`` arrive.
    """

    def __init__(
        self,
        audience: str | Sequence[str],
        *,
        emails: Sequence[str] = (),
        jwks: Mapping[str, Any] | None = None,
        jwks_url: str = GOOGLE_JWKS_URL,
        issuers: Sequence[str] = GOOGLE_ISSUERS,
        leeway: float = 30.0,
        min_refresh: float = 60.0,
        fetch: Callable[[str], Mapping[str, Any]] = _fetch,
    ) -> None:
        import jwt  # PyJWT, in the gcp extra

        self._jwt = jwt
        self.audience = [audience] if isinstance(audience, str) else list(audience)
        if not self.audience or not all(isinstance(a, str) and a for a in self.audience):
            raise ValueError("GoogleOIDCVerifier: audience must name at least one audience")
        self.emails = frozenset(emails)
        self.issuers = list(issuers)
        self.leeway = leeway
        self.jwks_url = jwks_url
        self.min_refresh = min_refresh
        self._fetch = fetch
        self._fixed = jwks is not None
        self._keys: dict[str, Any] = self._load(jwks) if jwks is not None else {}
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()

    def _load(self, document: Mapping[str, Any]) -> dict[str, Any]:
        keys: dict[str, Any] = {}
        for entry in document.get("keys", []):
            if entry.get("kty") == "RSA" and entry.get("kid"):
                keys[entry["kid"]] = self._jwt.PyJWK(dict(entry), algorithm="RS256").key
        return keys

    def _key(self, kid: str) -> Any:
        key = self._keys.get(kid)
        if key is not None or self._fixed:
            return key
        with self._lock:
            if kid not in self._keys and time.monotonic() - self._fetched_at >= self.min_refresh:
                self._fetched_at = time.monotonic()
                self._keys = self._load(self._fetch(self.jwks_url))
        return self._keys.get(kid)

    def verify(self, authorization: str | None) -> dict[str, Any]:
        """The token's claims, if ``authorization`` holds a valid one; else raise :class:`Unauthorized`.

        Blocking when Google's keys must be fetched: call it off the event loop.
        """
        jwt = self._jwt
        if not authorization:
            raise Unauthorized("push delivery: no Authorization header (the subscription must send an OIDC token)")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("push delivery: Authorization is not 'Bearer <token>'")
        token = token.strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"push delivery: malformed token: {exc}") from None
        if header.get("alg") != "RS256":
            raise Unauthorized(f"push delivery: token algorithm {header.get('alg')!r} is not RS256")
        kid = header.get("kid")
        key = self._key(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthorized(f"push delivery: token signed with unknown key {kid!r}")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.issuers,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"push delivery: token rejected: {exc}") from None
        if self.emails and (claims.get("email") not in self.emails or claims.get("email_verified") is not True):
            raise Unauthorized(f"push delivery: token for {claims.get('email')!r}, not an allowed service account")
        return claims
