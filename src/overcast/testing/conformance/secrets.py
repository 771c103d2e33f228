"""The conformance suite of secret stores (:class:`overcast.SecretStore`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import overcast
from overcast.errors import InvalidArgument, NotFound
from overcast.resources.secrets import SecretStore

from .base import ConformanceSuite

__all__ = ["SecretStoreSuite"]

MakeURL = Callable[[float | None], str]
SetSecret = Callable[[str, str, str], None]


class SecretStoreSuite(ConformanceSuite):
    """Every semantic of :class:`~overcast.SecretStore`.

    Provide ``make_url``, a callable ``(cache_ttl) -> URL`` of a new, empty store whose
    values are cached for ``cache_ttl`` seconds (the provider's default when None), and
    ``set_secret``, a callable ``(url, name, value)`` that stores a secret behind that URL.
    """

    @pytest.fixture
    def make_url(self) -> MakeURL:
        raise NotImplementedError("provide a make_url fixture: (cache_ttl) -> URL of a new empty secret store")

    @pytest.fixture
    def set_secret(self) -> SetSecret:
        raise NotImplementedError("provide a set_secret fixture: (url, name, value) -> None")

    @pytest.fixture
    def open_store(self) -> Callable[[str], SecretStore]:
        return overcast.open_secrets

    def test_capabilities(self, make_url: MakeURL, open_store: Callable[[str], SecretStore]) -> None:
        self.check_capabilities(open_store(make_url(None)))

    async def test_get(
        self, make_url: MakeURL, set_secret: SetSecret, open_store: Callable[[str], SecretStore]
    ) -> None:
        url = make_url(0)
        set_secret(url, "mail-api-key", "s3cr3t=with spaces ü")
        set_secret(url, "db_password", "p@ss")
        store = open_store(url)
        assert await store.get("mail-api-key") == "s3cr3t=with spaces ü"
        assert await store.get("db_password") == "p@ss"
        assert store.sync.get("mail-api-key") == "s3cr3t=with spaces ü"

    async def test_not_found(self, make_url: MakeURL, open_store: Callable[[str], SecretStore]) -> None:
        store = open_store(make_url(0))
        with pytest.raises(NotFound) as info:
            await store.get("never-set-anywhere-9f1c")
        assert "never-set-anywhere-9f1c" in str(info.value)
        with pytest.raises(NotFound):
            store.sync.get("never-set-anywhere-9f1c")

    async def test_invalid_names(self, make_url: MakeURL, open_store: Callable[[str], SecretStore]) -> None:
        store = open_store(make_url(0))
        for name in ("", "\ud800", "x" * 513):
            with pytest.raises(InvalidArgument):
                await store.get(name)

    async def test_values_are_cached_until_invalidated(
        self, make_url: MakeURL, set_secret: SetSecret, open_store: Callable[[str], SecretStore]
    ) -> None:
        url = make_url(3600)
        set_secret(url, "token", "one")
        store = open_store(url)
        assert await store.get("token") == "one"
        set_secret(url, "token", "two")
        assert await store.get("token") == "one"
        assert store.sync.get("token") == "one"
        store.invalidate("token")
        assert await store.get("token") == "two"
        set_secret(url, "token", "three")
        store.invalidate()
        assert store.sync.get("token") == "three"

    async def test_no_caching_with_zero_ttl(
        self, make_url: MakeURL, set_secret: SetSecret, open_store: Callable[[str], SecretStore]
    ) -> None:
        url = make_url(0)
        set_secret(url, "token", "one")
        store = open_store(url)
        assert await store.get("token") == "one"
        set_secret(url, "token", "two")
        assert await store.get("token") == "two"

    async def test_through_a_secret_handle(
        self, make_url: MakeURL, set_secret: SetSecret, open_store: Callable[[str], SecretStore]
    ) -> None:
        from overcast.resources.secrets import Secret

        url = make_url(0)
        set_secret(url, "api", "k")
        secret = Secret(open_store(url), "api")
        assert await secret.get() == "k"
        assert secret.sync.get() == "k"
