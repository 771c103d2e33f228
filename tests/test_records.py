"""overcast.resources.records: the value classes behave as the dataclasses they replace.

Each case builds the same class with ``@dataclass`` and with ``@record`` and compares what
a user can observe: construction, defaults, repr, equality, hashing, frozenness, slots,
pickling, pattern matching and ``replace``."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any, ClassVar

import pytest

from overcast.resources.records import FrozenInstanceError, field, fields, record, replace


def build(decorator: Any, field_of: Any, **options: Any) -> Any:
    class Item:
        key: str
        value: Any
        version: str = ""
        meta: dict[str, str] = field_of(default_factory=dict)
        original: Any = field_of(default=None, compare=False, repr=False)
        LIMIT: ClassVar[int] = 5

        def upper(self) -> str:
            return self.key.upper()

    return decorator(**options)(Item)


VARIANTS = [{}, {"frozen": True}, {"frozen": True, "slots": True}, {"slots": True}]


@pytest.mark.parametrize("options", VARIANTS, ids=lambda o: "-".join(o) or "plain")
def test_a_record_behaves_as_the_dataclass(options: dict[str, bool]) -> None:
    ours = build(record, field, **options)
    theirs = build(dataclasses.dataclass, dataclasses.field, **options)
    for cls in (ours, theirs):
        item = cls("a", {"x": 1}, original="raw")
        assert item.upper() == "A" and cls.LIMIT == 5 and item.meta == {} and item.version == ""
        assert item == cls("a", {"x": 1}, original="other")  # original is not compared
        assert item != cls("b", {"x": 1}) and item != ("a", {"x": 1})
        assert cls("a", 1).meta is not cls("a", 1).meta  # a new default per instance
        assert cls.__match_args__ == ("key", "value", "version", "meta", "original")
        assert ("__slots__" in cls.__dict__) == options.get("slots", False)
        assert cls(key="k", value=2, version="v") == cls("k", 2, "v")
        match cls("m", 3):
            case cls(key, value):
                assert (key, value) == ("m", 3)
    assert repr(ours("a", 1)) == repr(theirs("a", 1)) == "build.<locals>.Item(key='a', value=1, version='', meta={})"
    if options.get("frozen"):
        with pytest.raises(FrozenInstanceError, match="'key'"):
            ours("a", 1).key = "b"
        assert isinstance(FrozenInstanceError(), AttributeError)
        assert hash(ours("a", 1, meta=None)) == hash(ours("a", 1, meta=None))
    else:
        item = ours("a", 1)
        item.key = "b"
        assert item.key == "b"
        with pytest.raises(TypeError, match="unhashable"):
            hash(item)


def test_replace_and_fields() -> None:
    cls = build(record, field, frozen=True, slots=True)
    item = cls("a", 1, original="raw")
    changed = replace(item, version="2")
    assert (changed.version, changed.key, changed.original) == ("2", "a", "raw") and item.version == ""
    assert [f.name for f in fields(item)] == ["key", "value", "version", "meta", "original"]
    with pytest.raises(TypeError, match="no field 'nope'"):
        replace(item, nope=1)
    with pytest.raises(TypeError, match="needs a record"):
        replace(object())


@pytest.mark.parametrize("options", VARIANTS, ids=lambda o: "-".join(o) or "plain")
def test_records_pickle(options: dict[str, bool]) -> None:
    global Pickled
    Pickled = build(record, field, **options)
    Pickled.__qualname__ = Pickled.__name__ = "Pickled"
    item = Pickled("a", {"x": [1]}, "v", {"m": "1"}, original="raw")
    back = pickle.loads(pickle.dumps(item))
    assert back == item and back.original == "raw"


Pickled: Any = None


def test_field_order_and_arguments_are_checked() -> None:
    with pytest.raises(TypeError, match="non-default field 'b' follows"):

        @record
        class Wrong:
            a: int = 1
            b: int

    with pytest.raises(ValueError, match="both default and default_factory"):
        field(default=1, default_factory=list)


def test_inherited_fields_come_first_and_own_methods_are_kept() -> None:
    @record(frozen=True)
    class Base:
        a: int

    @record(frozen=True)
    class Child(Base):
        b: int = 2

        def __repr__(self) -> str:
            return "mine"

    assert Child(1).a == 1 and Child(1, 3).b == 3 and repr(Child(1)) == "mine"
    assert [f.name for f in fields(Child)] == ["a", "b"]


def test_the_public_value_types_are_records() -> None:
    from overcast import CloudEvent, Item, Message, ObjectInfo

    event = CloudEvent(type="t", source="s", data={"n": 1})
    assert replace(event, subject="x").subject == "x" and replace(event, subject="x").id == event.id
    for cls in (CloudEvent, Item, Message, ObjectInfo):
        assert fields(cls)
