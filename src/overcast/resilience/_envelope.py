"""What a replicated store keeps in each member: the document inside an envelope with its clock.

``{"_oc": CLOCK, "v": DOCUMENT}`` for a value, ``{"_oc": CLOCK, "_del": 1}`` for a
tombstone (a delete, kept so that an older write cannot bring the item back). A
document found without an envelope (a store adopted as it was) has the zero clock:
every replicated write is newer. ``_oc`` is the KV interface's ``ORDER_FIELD``: members
compare it themselves when a write is applied only if newer (``_put_if_newer``).
"""

from __future__ import annotations

from typing import Any

from ..resources.kv import Item
from .clock import is_clock

__all__ = ["LOG_PREFIX", "LOG_ROOM", "OVERHEAD", "ZERO", "Stored", "open_item", "tombstone", "wrap"]

#: Key prefix of the change log kept beside the data in each member (dirty key -> clock).
LOG_PREFIX = "~oc-log~/"
#: Key bytes a replicated store gives up to its log's prefix (rounded up to a multiple of 8).
LOG_ROOM = 16
ZERO = "0" * 19 + "-0"
#: Bytes the envelope adds to a document (the clock's 52 at most, the braces and names).
OVERHEAD = 80


class Stored:
    """One member's item read back: its native version, clock, and document (None: a tombstone)."""

    __slots__ = ("clock", "expires_at", "native", "value")

    def __init__(self, item: Item) -> None:
        self.native = item.version
        self.expires_at = item.expires_at
        raw = item.value
        clock = raw.get("_oc")
        if isinstance(clock, str) and is_clock(clock) and ("v" in raw or "_del" in raw) and len(raw) == 2:
            self.clock: str = clock
            value = raw.get("v")
            self.value: dict[str, Any] | None = value if isinstance(value, dict) else None
        else:
            self.clock, self.value = ZERO, raw

    def item(self, key: str) -> Item | None:
        return None if self.value is None else Item(key, self.value, self.clock, self.expires_at)


def wrap(value: dict[str, Any], data: bytes, clock: str) -> tuple[dict[str, Any], bytes]:
    """The envelope of a document and its JSON encoding, as the hooks take them (value, bytes)."""
    return {"_oc": clock, "v": value}, b'{"_oc":"' + clock.encode() + b'","v":' + data + b"}"


def tombstone(clock: str) -> tuple[dict[str, Any], bytes]:
    return {"_oc": clock, "_del": 1}, b'{"_oc":"' + clock.encode() + b'","_del":1}'


def open_item(key: str, item: Item | None) -> Item | None:
    """The user's item from a member's item (None for absent and tombstones)."""
    return None if item is None else Stored(item).item(key)
