"""Property tests: the key rules and encoding, and the version rules of every embedded KV store."""

from __future__ import annotations

import string
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import overcast
from overcast.errors import Conflict, InvalidArgument
from overcast.resources.keys import check_key, decode_key, encode_key

ENCODED_ALPHABET = set(string.ascii_letters + string.digits + "._-~")
keys = st.text(min_size=1)
unicode_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]))


@given(keys)
def test_encoding_round_trips(key: str) -> None:
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return
    assert decode_key(encode_key(key)) == key


@given(unicode_text)
def test_encoded_alphabet(key: str) -> None:
    assert set(encode_key(key)) <= ENCODED_ALPHABET


@given(unicode_text, unicode_text)
def test_encoding_keeps_prefixes(prefix: str, rest: str) -> None:
    assert encode_key(prefix + rest).startswith(encode_key(prefix))


@given(unicode_text, unicode_text)
def test_encoding_keeps_order_and_identity(a: str, b: str) -> None:
    assert (encode_key(a) == encode_key(b)) == (a == b)


@given(st.text(alphabet=ENCODED_ALPHABET | {"~", "é", "/", " "}))
def test_decode_accepts_only_what_encode_produces(text: str) -> None:
    try:
        decoded = decode_key(text)
    except InvalidArgument:
        return
    assert encode_key(decoded) == text


@given(st.text(), st.integers(min_value=1, max_value=64))
def test_check_key_accepts_exactly_the_valid_keys(key: str, max_bytes: int) -> None:
    try:
        raw: bytes | None = key.encode("utf-8")
    except UnicodeEncodeError:
        raw = None
    valid = raw is not None and 0 < len(raw) <= max_bytes
    try:
        result = check_key(key, max_bytes=max_bytes, resource="r")
    except InvalidArgument as exc:
        assert not valid
        assert "r:" in str(exc)
    else:
        assert valid and result == raw


@given(st.one_of(st.integers(), st.binary(), st.none(), st.lists(st.text())))
def test_check_key_rejects_non_strings(key: Any) -> None:
    with pytest.raises(InvalidArgument):
        check_key(key, max_bytes=100, resource="r")


# -- the version rules, against a model --------------------------------------------------

KEYS = st.sampled_from(["a", "b", "ü/🚀"])


class VersionRules(RuleBasedStateMachine):
    """Writes and deletes, plain and conditional, compared with a dict of (value, version)."""

    url: str = ""

    @initialize()
    def open(self) -> None:
        self.store = overcast.open_kv(self.url.format(uuid.uuid4().hex))
        self.store.sync.create()
        self.model: dict[str, tuple[dict[str, int], str]] = {}
        self.seen: list[str] = []
        self.counter = 0

    def _value(self) -> dict[str, int]:
        self.counter += 1
        return {"n": self.counter}

    def _remember(self, key: str, value: dict[str, int], version: str) -> None:
        assert version not in self.seen
        self.seen.append(version)
        self.model[key] = (value, version)

    @rule(key=KEYS)
    def put(self, key: str) -> None:
        value = self._value()
        self._remember(key, value, self.store.sync.put(key, value))

    @rule(key=KEYS)
    def put_if_absent(self, key: str) -> None:
        value = self._value()
        try:
            version = self.store.sync.put(key, value, if_absent=True)
        except Conflict:
            assert key in self.model
        else:
            assert key not in self.model
            self._remember(key, value, version)

    @precondition(lambda self: bool(self.seen))
    @rule(key=KEYS, pick=st.integers(min_value=0))
    def put_if_version(self, key: str, pick: int) -> None:
        version = self.seen[pick % len(self.seen)]
        value = self._value()
        current = self.model.get(key)
        try:
            new = self.store.sync.put(key, value, if_version=version)
        except Conflict:
            assert current is None or current[1] != version
        else:
            assert current is not None and current[1] == version
            self._remember(key, value, new)

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        assert self.store.sync.delete(key) == (key in self.model)
        self.model.pop(key, None)

    @precondition(lambda self: bool(self.seen))
    @rule(key=KEYS, pick=st.integers(min_value=0))
    def delete_if_version(self, key: str, pick: int) -> None:
        version = self.seen[pick % len(self.seen)]
        current = self.model.get(key)
        try:
            existed = self.store.sync.delete(key, if_version=version)
        except Conflict:
            assert current is None or current[1] != version
        else:
            assert current is not None and current[1] == version and existed
            del self.model[key]

    @invariant()
    def matches_the_model(self) -> None:
        if not hasattr(self, "store"):
            return
        found = self.store.sync.get_many(["a", "b", "ü/🚀"])
        assert {k: (i.value, i.version) for k, i in found.items()} == self.model

    def teardown(self) -> None:
        if hasattr(self, "store"):
            self.store.close()


@pytest.mark.parametrize("scheme", ["memory", "sqlite"])
def test_version_rules(scheme: str, tmp_path: Path) -> None:
    url = "memory://rules-{}" if scheme == "memory" else f"sqlite:///{tmp_path}/rules-{{}}.db"
    machine = type(f"VersionRules_{scheme}", (VersionRules,), {"url": url})
    run = settings(max_examples=40, stateful_step_count=25, deadline=None, suppress_health_check=list(HealthCheck))
    run_state_machine_as_test(machine, settings=run)
