"""Value classes without the cost of :mod:`dataclasses` at import time.

Overcast's value types (``Item``, ``ObjectInfo``, ``Message``, ``CloudEvent``,
``ResourceURL``, the configuration's targets, ...) are declared with :func:`record`, a
small subset of ``@dataclass`` — fields from annotations, defaults and
``field(default_factory=...)``, ``frozen``, ``slots``, ``repr=False`` and
``compare=False`` fields — and copied with :func:`replace`. It exists because
``import dataclasses`` (which imports :mod:`inspect`, :mod:`ast`, :mod:`dis`, ...) and
building twenty frozen dataclasses cost about 40 ms of a cold start on a small Lambda,
while this builds all the methods of a class in one ``exec``, on the first call of one of
them, and imports nothing.

Type checkers treat a record as a dataclass (:pep:`681`'s ``dataclass_transform``).
Instances behave as dataclass instances do: keyword or positional construction, equality
and hashing by fields (frozen ones), ``FrozenInstanceError`` (an ``AttributeError``) on
assignment to a frozen one, ``repr`` by fields, ``__match_args__``, pickling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform, overload

__all__ = ["FrozenInstanceError", "field", "fields", "record", "replace"]

T = TypeVar("T")


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen record."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Field:
    """One field of a record (what :func:`fields` returns)."""

    __slots__ = ("compare", "default", "default_factory", "name", "repr")

    def __init__(self, default: Any, default_factory: Any, repr: bool, compare: bool) -> None:
        self.name = ""
        self.default, self.default_factory = default, default_factory
        self.repr, self.compare = repr, compare

    def __repr__(self) -> str:
        return f"Field({self.name!r})"


def field(
    *, default: Any = MISSING, default_factory: Callable[[], Any] = MISSING, repr: bool = True, compare: bool = True
) -> Any:
    """A field's default (or the function that makes one per instance) and whether it is
    shown by ``repr`` and compared by ``==``."""
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("a field cannot have both default and default_factory")
    return Field(default, default_factory, repr, compare)


def _is_classvar(annotation: Any) -> bool:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", repr(annotation))
    return text.startswith(("ClassVar", "typing.ClassVar")) or text == "ClassVar"


def _own_fields(cls: type) -> list[Field]:
    found = []
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063 (no inspect)
        if _is_classvar(annotation):
            continue
        value = cls.__dict__.get(name, MISSING)
        spec = value if isinstance(value, Field) else Field(value, MISSING, True, True)
        spec.name = name
        found.append(spec)
    return found


def _all_fields(cls: type) -> dict[str, Field]:
    merged: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        merged.update(getattr(base, "__record_fields__", {}))
    for spec in _own_fields(cls):
        merged[spec.name] = spec
    return merged


def _check_order(name: str, specs: list[Field]) -> None:
    seen_default = False
    for spec in specs:
        if spec.default is not MISSING or spec.default_factory is not MISSING:
            seen_default = True
        elif seen_default:
            raise TypeError(f"{name}: non-default field {spec.name!r} follows a field with a default")


def _source(specs: list[Field], frozen: bool, has_post_init: bool) -> tuple[str, dict[str, Any]]:
    """The source of the class's methods, and the globals it needs."""
    env: dict[str, Any] = {"MISSING": MISSING, "FrozenInstanceError": FrozenInstanceError}
    params, body = [], []
    for spec in specs:
        if spec.default is not MISSING:
            env[f"_d_{spec.name}"] = spec.default
            params.append(f"{spec.name}=_d_{spec.name}")
            value = spec.name
        elif spec.default_factory is not MISSING:
            env[f"_f_{spec.name}"] = spec.default_factory
            params.append(f"{spec.name}=MISSING")
            value = f"_f_{spec.name}() if {spec.name} is MISSING else {spec.name}"
        else:
            params.append(spec.name)
            value = spec.name
        body.append(f"    _set(self, {spec.name!r}, {value})" if frozen else f"    self.{spec.name} = {value}")
    if has_post_init:
        body.append("    self.__post_init__()")
    shown = [s.name for s in specs if s.repr]
    compared = [s.name for s in specs if s.compare]
    repr_parts = ", ".join(f"{n}={{self.{n}!r}}" for n in shown)
    key = "(" + "".join(f"self.{n}, " for n in compared) + ")"
    other_key = "(" + "".join(f"other.{n}, " for n in compared) + ")"
    lines = [
        f"def __init__(self, {', '.join(params)}):" if params else "def __init__(self):",
        *(body or ["    pass"]),
        "def __repr__(self):",
        f"    return f'{{type(self).__qualname__}}({repr_parts})'",
        "def __eq__(self, other):",
        "    if other.__class__ is not self.__class__:",
        "        return NotImplemented",
        f"    return {key} == {other_key}",
        "def __hash__(self):",
        f"    return hash({key})",
    ]
    env["_set"] = object.__setattr__
    return "\n".join(lines), env


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


#: the methods compiled per class, on first use (see :func:`_compile`)
_COMPILED = ("__init__", "__repr__", "__eq__", "__hash__")


def _compile(cls: Any) -> None:
    """Compile ``cls``'s methods and put them in place of the stand-ins :func:`record` left.

    Compiling is most of what a record costs, and most records a process declares are
    never made (an App that declares six resources makes no ``Item``): so it waits for the
    first call of one of its methods."""
    pending = cls.__dict__.get("__record_pending__")
    if not pending:
        return
    specs = list(cls.__record_fields__.values())
    source, env = _source(specs, cls.__record_frozen__, hasattr(cls, "__post_init__"))
    made: dict[str, Any] = {}
    exec(source, env, made)  # one compile for every method of the class
    for name in pending:
        made[name].__qualname__ = f"{cls.__qualname__}.{name}"
        setattr(cls, name, made[name])
    cls.__record_pending__ = ()


def _stand_in(cls: Any, name: str) -> Callable[..., Any]:
    """What stands for ``cls``'s method ``name`` until the first call compiles it."""

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        _compile(cls)
        return cls.__dict__[name](self, *args, **kwargs)

    method.__name__ = name
    method.__qualname__ = f"{cls.__qualname__}.{name}"
    return method


@overload
def record(cls: type[T], /) -> type[T]: ...
@overload
def record(*, frozen: bool = False, slots: bool = False) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(field_specifiers=(field, Field))
def record(cls: type[T] | None = None, /, *, frozen: bool = False, slots: bool = False) -> Any:
    """Make ``cls`` a value class from its annotated fields (``@dataclass``'s subset)."""

    def build(cls: Any) -> Any:
        specs = _all_fields(cls)
        ordered = list(specs.values())
        _check_order(cls.__qualname__, ordered)
        made: dict[str, Any] = {}
        if slots:
            skip = {*specs, "__dict__", "__weakref__"}
            namespace = {k: v for k, v in cls.__dict__.items() if k not in skip}
            own = [s.name for s in _own_fields(cls)]
            namespace["__slots__"] = tuple(own)
            namespace["__qualname__"] = cls.__qualname__
            cls = type(cls)(cls.__name__, cls.__bases__, namespace)
            if frozen:
                made["__getstate__"] = _getstate
                made["__setstate__"] = _setstate
        else:
            for spec in ordered:
                if spec.name in cls.__dict__ and isinstance(cls.__dict__[spec.name], Field):
                    if spec.default is MISSING:
                        delattr(cls, spec.name)
                    else:
                        setattr(cls, spec.name, spec.default)
        own_hash = cls.__dict__.get("__hash__") is not None and "__eq__" not in cls.__dict__
        # a method the class writes itself is kept, as @dataclass does
        pending = [name for name in ("__init__", "__repr__", "__eq__") if name not in cls.__dict__]
        if frozen:
            cls.__setattr__ = _frozen_setattr
            cls.__delattr__ = _frozen_delattr
        if not own_hash:
            # equal by value: hashable by value when frozen, unhashable when mutable (as @dataclass)
            if frozen:
                pending.append("__hash__")
            else:
                cls.__hash__ = None
        if "__getstate__" in made:
            cls.__getstate__ = made["__getstate__"]
            cls.__setstate__ = made["__setstate__"]
        cls.__record_fields__ = specs
        cls.__record_frozen__ = frozen
        cls.__record_pending__ = tuple(pending)
        for name in pending:
            setattr(cls, name, _stand_in(cls, name))
        cls.__match_args__ = tuple(specs)  # type: ignore[misc]
        return cls

    return build if cls is None else build(cls)


def _getstate(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, name) for name in type(self).__record_fields__)


def _setstate(self: Any, state: tuple[Any, ...]) -> None:
    for name, value in zip(type(self).__record_fields__, state, strict=True):
        object.__setattr__(self, name, value)


def fields(obj: Any) -> tuple[Field, ...]:
    """The fields of a record class or instance, in order."""
    specs = getattr(obj, "__record_fields__", None)
    if specs is None:
        raise TypeError(f"{obj!r} is not a record")
    return tuple(specs.values())


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of the record ``obj`` with ``changes`` to its fields (``dataclasses.replace``)."""
    specs = getattr(type(obj), "__record_fields__", None)
    if specs is None:
        raise TypeError(f"replace() needs a record, not {type(obj).__name__}")
    unknown = set(changes) - set(specs)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {sorted(unknown)[0]!r}")
    values = {name: changes[name] if name in changes else getattr(obj, name) for name in specs}
    made: T = type(obj)(**values)
    return made
