"""The typed option readers of ResourceURL: values, defaults, and the errors they raise."""

from __future__ import annotations

import re

import pytest

from overcast.errors import ConfigError
from overcast.resources.url import ResourceURL


def _url(query: str) -> ResourceURL:
    return ResourceURL.parse(f"sqlite:///data/app.db?{query}")


def _refusal(call: object) -> str:
    with pytest.raises(ConfigError) as caught:
        call()  # type: ignore[operator]
    return str(caught.value)


# -- whole numbers ---------------------------------------------------------------------


def test_int_reads_the_value_and_falls_back_to_the_default() -> None:
    url = _url("n=7&blank=")
    assert url.option_int("n", 1) == 7
    assert url.option_int("missing", 3) == 3
    assert url.option_int("missing", None) is None
    assert url.option_int("blank", 4) == 4  # given empty: the default
    assert url.option_int("n", 1, minimum=7, maximum=7) == 7


@pytest.mark.parametrize(
    ("value", "bounds", "allowed"),
    [
        ("zero", {"minimum": 1}, "a positive whole number"),
        ("0", {"minimum": 1}, "a positive whole number"),
        ("1.5", {}, "a whole number"),
        ("1001", {"minimum": 1, "maximum": 1000}, "a whole number from 1 to 1000"),
        ("-1", {"minimum": 0}, "a whole number of at least 0"),
        ("99", {"maximum": 20}, "a whole number of at most 20"),
    ],
)
def test_int_refusal_names_resource_option_value_allowed_and_url(
    value: str, bounds: dict[str, int], allowed: str
) -> None:
    url = _url(f"max_attempts={value}")
    text = _refusal(lambda: url.option_int("max_attempts", 5, resource="queue 'jobs'", **bounds))
    assert text == f"queue 'jobs': option max_attempts must be {allowed}, got {value!r} in {url}"


def test_int_unit_is_named() -> None:
    url = _url("part_size=12")
    text = _refusal(lambda: url.option_int("part_size", 8, minimum=5 * 1024 * 1024, unit="bytes"))
    assert "option part_size must be a whole number of at least 5242880 bytes, got '12'" in text


# -- numbers and durations -------------------------------------------------------------


def test_float_reads_finite_numbers_in_range() -> None:
    url = _url("x=0.25&big=1e3")
    assert url.option_float("x", 1.0, minimum=0, maximum=1) == 0.25
    assert url.option_float("big", None) == 1000.0
    assert url.option_float("missing", 2.5) == 2.5


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "lots", "0", "-2"])
def test_float_positive_refuses_what_is_not_above_zero_or_finite(value: str) -> None:
    url = _url(f"ttl={value}")
    text = _refusal(lambda: url.option_float("ttl", None, positive=True, unit="seconds"))
    assert text.startswith(f"option ttl must be a positive number of seconds, got {value!r} in sqlite:")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30", 30.0), ("1.5", 1.5), ("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), ("2h", 7200.0), ("1D", 86400.0)],
)
def test_seconds_reads_plain_numbers_and_units(value: str, seconds: float) -> None:
    assert _url(f"ttl={value}").option_seconds("ttl", None) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["-1", "5 minutes", "m", "1w", "nan", "inf"])
def test_seconds_refuses_other_forms_saying_which_are_allowed(value: str) -> None:
    url = _url(f"timeout={value}")
    text = _refusal(lambda: url.option_seconds("timeout", 10.0, resource="cache"))
    assert text.startswith("cache: option timeout must be a duration (seconds, or a number with a unit: ")
    assert f"got {value!r} in {url}" in text


def test_seconds_bounds_are_in_seconds() -> None:
    url = _url("default_ttl=2d")
    text = _refusal(lambda: url.option_seconds("default_ttl", None, positive=True, maximum=86400))
    assert "option default_ttl must be a positive duration of at most 86400 seconds" in text
    assert _url("default_ttl=0").option_seconds("default_ttl", 1.0) == 0.0
    assert "positive" in _refusal(lambda: _url("t=0").option_seconds("t", None, positive=True))


# -- booleans and choices --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("1", True),
        ("YES", True),
        ("on", True),
        ("false", False),
        ("0", False),
        ("No", False),
        ("off", False),
    ],
)
def test_bool_reads_the_usual_words(value: str, expected: bool) -> None:
    assert _url(f"flag={value}").option_bool("flag", not expected) is expected


def test_bool_default_and_refusal() -> None:
    assert _url("flag=").option_bool("flag", True) is True
    assert _url("").option_bool("flag", False) is False
    text = _refusal(lambda: _url("cluster=maybe").option_bool("cluster", False, resource="cache"))
    assert text == (
        "cache: option cluster must be true or false (or 1/0, yes/no, on/off), got 'maybe' "
        "in sqlite:///data/app.db?cluster=maybe"
    )


def test_choice_matches_ignoring_case_and_returns_the_choice_as_spelled() -> None:
    url = _url("mode=FULL")
    assert url.option_choice("mode", ("full", "normal"), "full") == "full"
    assert url.option_choice("missing", ("full", "normal"), "normal") == "normal"
    assert url.option_choice("missing", ("sns",), None) is None


def test_choice_refusal_lists_the_choices() -> None:
    two = _refusal(lambda: _url("deduplication=hash").option_choice("deduplication", ("id", "content"), "id"))
    assert "option deduplication must be 'id' or 'content', got 'hash'" in two
    three = _refusal(lambda: _url("client=x").option_choice("client", ("auto", "lite", "boto3"), "auto"))
    assert "option client must be one of 'auto', 'lite', 'boto3', got 'x'" in three


# -- credentials -----------------------------------------------------------------------


def test_refusals_never_show_credentials() -> None:
    url = ResourceURL.parse("postgresql://app:s3cret@db.internal:5432/app?pool_size=many", credentials=True)
    text = _refusal(lambda: url.option_int("pool_size", 10, minimum=1, resource="orders"))
    assert "s3cret" not in text and "app:" not in text
    assert re.search(r"orders: option pool_size must be a positive whole number, got 'many' in postgresql://", text)


def test_shown_urls_hide_credentials_however_they_are_written() -> None:
    """A password never shows, even one holding an unencoded '/', '?' or '#' (which such a URL is
    refused for), and an option named as a secret shows no value."""
    from overcast.resources.url import hide_userinfo

    assert hide_userinfo("postgresql://u:s3cret@db:5432/app") == "postgresql://***@db:5432/app"
    assert hide_userinfo("postgresql://u:ab/s3cret@db:5432/app") == "postgresql://***@db:5432/app"
    assert hide_userinfo("redis://:s3?cret@cache:6379/0") == "redis://***@cache:6379/0"
    assert hide_userinfo("azblob://c?timeout=2&sas=s3cret&x=1") == "azblob://c?timeout=2&sas=***&x=1"
    assert hide_userinfo("s3://bucket/key@v1") == "s3://bucket/key@v1"  # no credentials: unchanged
    for url in ("postgresql://u:ab/s3cret@db:5432/app", "redis://:s3#cret@cache:6379/0"):
        with pytest.raises(ConfigError, match="percent-encode") as caught:
            ResourceURL.parse(url, credentials=True)
        assert "cret" not in str(caught.value)
    for url, reason in (
        ("redis://cache:6379/0?timeout=1&timeout=2&password=s3cret", "repeats the option"),
        ("redis://cache:6379/0?timeout=1&password=s3cret", "carries a secret"),
    ):
        with pytest.raises(ConfigError, match=reason) as refused:
            ResourceURL.parse(url)
        assert "s3cret" not in str(refused.value)
