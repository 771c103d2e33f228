"""Key rules shared by every store, and a reversible encoding for stores whose keys are narrower.

An Overcast key is any non-empty Unicode string (no lone surrogates) of at most
``max_bytes`` bytes in UTF-8. Stores whose native keys forbid characters (Firestore
document ids, Azure RowKeys, file names) store :func:`encode_key` of it instead:
the encoding is reversible, keeps prefixes (so ``scan(prefix)`` maps onto a native
prefix query) and uses only ``[A-Za-z0-9._-]`` and ``~``.
"""

from __future__ import annotations

from ..errors import InvalidArgument

__all__ = ["check_key", "decode_key", "encode_key", "prefix_upper_bound"]

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
_HEX = "0123456789ABCDEF"


def check_key(key: object, *, max_bytes: int, resource: str, what: str = "key") -> bytes:
    """Return ``key`` as UTF-8, or raise :class:`InvalidArgument` naming the rule it breaks."""
    if not isinstance(key, str):
        raise InvalidArgument(f"{resource}: {what} must be a str, not {type(key).__name__}", resource=resource)
    if not key:
        raise InvalidArgument(f"{resource}: {what} must not be empty", resource=resource)
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgument(
            f"{resource}: {what} {key!r} is not valid Unicode (lone surrogate)", resource=resource
        ) from exc
    if len(raw) > max_bytes:
        raise InvalidArgument(
            f"{resource}: {what} {key[:40]!r}... is {len(raw)} bytes in UTF-8; the limit is {max_bytes} bytes",
            resource=resource,
        )
    return raw


def encode_key(key: str) -> str:
    """Encode ``key`` into ``[A-Za-z0-9._-~]``: safe bytes stay, others become ``~HH``."""
    out: list[str] = []
    for byte in key.encode("utf-8"):
        if byte in _SAFE:
            out.append(chr(byte))
        else:
            out.append("~" + _HEX[byte >> 4] + _HEX[byte & 15])
    return "".join(out)


def decode_key(encoded: str) -> str:
    """Invert :func:`encode_key`; raise :class:`InvalidArgument` on text it cannot produce."""
    raw = bytearray()
    i = 0
    n = len(encoded)
    while i < n:
        char = encoded[i]
        if char == "~":
            pair = encoded[i + 1 : i + 3]
            if len(pair) != 2 or any(c not in _HEX for c in pair):
                raise InvalidArgument(f"encoded key {encoded!r} has a bad escape at {i}")
            byte = int(pair, 16)
            if byte in _SAFE:  # encode_key leaves safe bytes as they are: one text per key
                raise InvalidArgument(f"encoded key {encoded!r} escapes a safe character at {i}")
            raw.append(byte)
            i += 3
            continue
        if ord(char) >= 128 or ord(char) not in _SAFE:
            raise InvalidArgument(f"encoded key {encoded!r} has an unencoded character at {i}")
        raw.append(ord(char))
        i += 1
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"encoded key {encoded!r} is not UTF-8 once decoded") from exc


def prefix_upper_bound(prefix: str) -> str | None:
    """The least string greater than every string starting with ``prefix`` (None: no bound).

    For stores that order keys by UTF-8 bytes, which is code-point order (SQLite's TEXT,
    PostgreSQL's ``COLLATE "C"``): incrementing the last code point that can be
    incremented gives the bound.
    """
    chars = list(prefix)
    while chars:
        point = ord(chars.pop()) + 1
        if point == 0xD800:
            point = 0xE000  # surrogates cannot be stored in UTF-8
        if point <= 0x10FFFF:
            return "".join(chars) + chr(point)
    return None
