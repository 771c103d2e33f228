"""Hostile input for the inbound adapters: the clouds' recorded events (tests/fixtures/),
mutated as a broken client, a proxy or a hand-written test event would break them.

A mutation picks a place in the event (any key of any object, any item of any list)
and drops it, nulls it, empties it, gives it another type, an odd string (``%ZZ``, NUL,
a lone surrogate, non-ASCII, 10,000 characters), a huge value, or text that is not the
base64 or JSON it should be. One to three mutations per example.

How many examples: ``HOSTILE`` below runs ``OVERCAST_HOSTILE_EXAMPLES`` of them per
test (200 by default), with a fixed seed when ``CI`` is set; ``OVERCAST_LONG=1`` (or
``pytest --long``) runs 5,000 with a random seed. See docs/robustness.md.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

FIXTURES = Path(__file__).parents[1] / "fixtures"

Path_ = tuple[Any, ...]


def long_run() -> bool:
    """Whether the long profile was asked for (``OVERCAST_LONG=1``; ``pytest --long`` sets it)."""
    return os.environ.get("OVERCAST_LONG", "").strip().lower() in ("1", "true", "yes")


def examples() -> int:
    given = os.environ.get("OVERCAST_HOSTILE_EXAMPLES", "").strip()
    if given:
        return int(given)
    return 5000 if long_run() else 200


#: the settings of every property test here: bounded in CI, with a fixed seed there
HOSTILE = settings(
    max_examples=examples(),
    deadline=None,  # two cores shared with other jobs: time is checked separately, by a bound per call
    derandomize=os.environ.get("CI", "").lower() == "true" and not long_run(),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    print_blob=True,
)

HUGE = "x" * 300_000

#: values a field may be replaced with
ODD_VALUES: list[Any] = [
    None,
    "",
    "%ZZ",
    "%",
    "\x00",
    "a\x00b",
    "\ud800",
    "ü✓漢字🙂",
    "a" * 10_000,
    HUGE,
    "not base64!!",
    "====",
    "{not json",
    "[]",
    "null",
    0,
    -1,
    2**63,
    1.5e308,
    True,
    False,
    [],
    [None],
    {},
    {"": None},
    {"\x00": "\ud800"},
]


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def paths(value: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    """Every place in a JSON value: each key of each object and each item of each list."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from paths(item, (*prefix, index))


def _parent(value: Any, path: Path_) -> Any:
    for step in path[:-1]:
        if (isinstance(value, dict) and step in value) or (
            isinstance(value, list) and isinstance(step, int) and step < len(value)
        ):
            value = value[step]
        else:
            return None
    return value


def apply(event: Any, path: Path_, op: str, odd: Any) -> None:
    """Mutate ``event`` in place at ``path``: ``drop`` it, ``set`` it to ``odd``, or ``append`` ``odd`` to its text."""
    parent = _parent(event, path)
    last = path[-1]
    if isinstance(parent, dict):
        if last not in parent:
            return
    elif isinstance(parent, list):
        if not isinstance(last, int) or last >= len(parent):
            return
    else:
        return
    if op == "drop":
        del parent[last]
    elif op == "append" and isinstance(parent[last], str) and isinstance(odd, str):
        parent[last] = parent[last] + odd
    else:
        parent[last] = copy.deepcopy(odd)


MUTATION = st.tuples(st.sampled_from(["drop", "set", "set", "append"]), st.sampled_from(ODD_VALUES))


@st.composite
def mutated(draw: st.DrawFn, originals: list[Any], *, most: int = 3) -> tuple[Any, list[tuple[Path_, str, Any]]]:
    """One of ``originals`` (deep-copied) with one to ``most`` mutations; returns it and what was done."""
    original = draw(st.sampled_from(originals))
    event = copy.deepcopy(original)
    done: list[tuple[Path_, str, Any]] = []
    for _ in range(draw(st.integers(1, most))):
        places = list(paths(event))
        if not places:
            break
        place = draw(st.sampled_from(places))
        op, odd = draw(MUTATION)
        apply(event, place, op, odd)
        done.append((place, op, odd if not isinstance(odd, str) or len(odd) < 40 else f"<{len(odd)} chars>"))
    return event, done


def fixtures_under(folder: str, *, suffix: str = ".json") -> list[Path]:
    return sorted((FIXTURES / folder).rglob(f"*{suffix}"))


def note(text: str) -> None:
    """Count ``text`` in hypothesis's statistics (``--hypothesis-show-statistics``), inside a property test."""
    if currently_in_test_context():
        event(text)


def has_traceback(text: str | bytes) -> bool:
    """Whether a reply body shows a Python traceback or an exception's internals."""
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return "Traceback" in raw or 'File "' in raw
