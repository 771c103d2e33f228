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
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError, PermissionDenied

if TYPE_CHECKING:
    from ...app import App

__all__ = ["GOOGLE_ISSUERS", "GOOGLE_JWKS_URL", "GoogleOIDCVerifier", "Unauthorized", "describe", "verifier_for"]

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
        audience: the audiences accepted (the push endpoint URL, or what the subscription set);
            empty with ``emails`` given: the URL each request came to (see :meth:`verify`).
        emails: service accounts allowed to push (any verified one when empty: anyone can
            mint a Google-signed token for any audience, so name them).
        jwks: the keys, as a JWKS document; Google's are fetched from ``jwks_url`` when None.
        jwks_url: where the keys live.
        issuers: accepted ``iss`` values.
        leeway: seconds of clock skew tolerated on ``exp``/``iat``.
        min_refresh: seconds between two fetches of the keys, however many unknown ``kid`` arrive.
    """

    def __init__(
        self,
        audience: str | Sequence[str] = (),
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
        if not all(isinstance(a, str) and a for a in self.audience):
            raise ValueError("GoogleOIDCVerifier: an audience must be a non-empty string")
        self.emails = frozenset(emails)
        if not self.audience and not self.emails:
            raise ValueError("GoogleOIDCVerifier: name the audience, the service accounts allowed, or both")
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

    def verify(self, authorization: str | None, *, urls: Sequence[str] = ()) -> dict[str, Any]:
        """The token's claims, if ``authorization`` holds a valid one; else raise :class:`Unauthorized`.

        ``urls``: the audiences the request's own URL stands for (Pub/Sub's and Cloud
        Scheduler's default audience is the endpoint URL, Eventarc's the service URL),
        accepted when no audience was named. Blocking when Google's keys must be fetched:
        call it off the event loop.
        """
        jwt = self._jwt
        if not authorization:
            raise Unauthorized("delivery: no Authorization header (the sender must attach a Google-signed OIDC token)")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("delivery: Authorization is not 'Bearer <token>'")
        token = token.strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"delivery: malformed token: {exc}") from None
        if header.get("alg") != "RS256":
            raise Unauthorized(f"delivery: token algorithm {header.get('alg')!r} is not RS256")
        kid = header.get("kid")
        key = self._key(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthorized(f"delivery: token signed with unknown key {kid!r}")
        audience = self.audience or [u for u in urls if u]
        if not audience:
            raise Unauthorized("delivery: no audience to check the token against")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=audience,
                issuer=self.issuers,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"delivery: token rejected: {exc}") from None
        if self.emails and (claims.get("email") not in self.emails or claims.get("email_verified") is not True):
            raise Unauthorized(f"delivery: token for {claims.get('email')!r}, not an allowed service account")
        return claims


# -- configuration: [targets.NAME.events] and the environment ------------------------------------

AUDIENCE_ENV = "OVERCAST_GCP_PUSH_AUDIENCE"
EMAILS_ENV = "OVERCAST_GCP_PUSH_EMAILS"
JWKS_ENV = "OVERCAST_GCP_JWKS_URL"
#: the keys of ``[targets.NAME.events]`` Cloud Run reads (``verify`` besides)
EVENTS_KEYS: dict[str, type | tuple[type, ...]] = {
    "audience": (str, list),
    "service_accounts": (str, list),
    "jwks_url": str,
}


def verifier_for(app: App) -> tuple[GoogleOIDCVerifier | None, bool]:
    """The verifier ``app``'s target configures, and whether verification is switched off.

    ``(None, False)``: nothing configured, every delivery is refused.

    Raises:
        ConfigError: a key or value of ``[targets.NAME.events]`` is wrong, or
            ``verify = "oidc"`` names neither an audience nor a service account.
    """
    from ...runtime.event_auth import events_settings

    settings = events_settings(app, EVENTS_KEYS)
    mode = settings.verify
    if mode not in ("", "off", "oidc"):
        raise ConfigError(f'{settings.where} verify = {mode!r}: use "oidc" (the default) or "off"')
    if settings.off:
        return None, True
    audience = settings.names("audience", AUDIENCE_ENV)
    emails = settings.names("service_accounts", EMAILS_ENV)
    if not audience and not emails:
        if mode == "oidc":
            raise ConfigError(
                f'{settings.where} verify = "oidc" needs service_accounts (the push, Eventarc or '
                f"Scheduler service account) or audience ({EMAILS_ENV} / {AUDIENCE_ENV})"
            )
        return None, False
    jwks_url = settings.text("jwks_url", JWKS_ENV) or GOOGLE_JWKS_URL
    return GoogleOIDCVerifier(audience, emails=emails, jwks_url=jwks_url), False


def describe(verifier: GoogleOIDCVerifier | None, off: bool, where: str) -> tuple[int, str]:
    """The start-up log line (level, text) saying how deliveries to ``where`` are checked."""
    if off:
        return logging.WARNING, (
            f"events.verify = off: {where} accepts deliveries without verifying who sent them; "
            "keep the service private (Cloud Run: --no-allow-unauthenticated, invoker role for the "
            "push, Eventarc and Scheduler service accounts)"
        )
    if verifier is None:
        return logging.ERROR, (
            f"{where} refuses every delivery (403): no verification configured. Set "
            '[targets.NAME.events] service_accounts = ["push@PROJECT.iam.gserviceaccount.com"] '
            f"(or {EMAILS_ENV}; audience / {AUDIENCE_ENV} when the sender sets one), or "
            'verify = "off" (OVERCAST_EVENTS_VERIFY=off) for a private service'
        )
    audience = ", ".join(verifier.audience) or "the URL each delivery is sent to"
    accounts = ", ".join(sorted(verifier.emails))
    if not accounts:
        return logging.WARNING, (
            f"{where} checks Google-signed OIDC tokens for audience {audience} from ANY service account "
            "(anyone can mint one for any audience); name service_accounts to restrict it"
        )
    return logging.INFO, f"{where} checks Google-signed OIDC tokens for audience {audience} from {accounts}"
