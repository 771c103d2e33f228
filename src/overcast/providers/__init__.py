"""One package per provider family; each owns everything about its service (see docs/architecture.md)."""
