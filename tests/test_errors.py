"""The error family, the public names, and what ``import overcast`` loads."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import overcast
from overcast import errors


def drawn_tree() -> dict[str, str]:
    """Class name -> parent name, read from the tree drawn in the module docstring."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    assert errors.__doc__ is not None
    for line in errors.__doc__.splitlines():
        match = re.match(r"^(\s*)(?:[│ ]*[├└]── )?([A-Z][A-Za-z]+)\b", line)
        if not match or not (line.strip().startswith(("├", "└", "│")) or line.strip() == "OvercastError"):
            continue
        name = match.group(2)
        depth = line.index(name)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    return parents


def test_every_class_in_the_docstring_exists_and_subclasses_as_drawn() -> None:
    parents = drawn_tree()
    assert set(parents) == {
        "ConfigError",
        "MissingDependency",
        "ProviderError",
        "NotFound",
        "Conflict",
        "Unavailable",
        "Throttled",
        "InvalidArgument",
        "PermissionDenied",
        "NotSupported",
    }
    for name, parent in parents.items():
        cls = getattr(errors, name)
        assert issubclass(cls, getattr(errors, parent)), (name, parent)
        assert issubclass(cls, errors.OvercastError)
    assert set(errors.__all__) == {*parents, "OvercastError"}


def test_errors_are_caught_by_the_builtin_they_refine() -> None:
    assert issubclass(errors.InvalidArgument, ValueError)
    assert issubclass(errors.MissingDependency, ImportError)
    assert not issubclass(errors.Conflict, errors.ConfigError)


def test_public_names_are_complete_and_sorted() -> None:
    assert overcast.__all__ == sorted(overcast.__all__)
    for name in overcast.__all__:
        assert hasattr(overcast, name), name
    for name in ["App", "CloudEvent", "errors", "open_kv", "open_bucket", "open_queue", "open_topic"]:
        assert name in overcast.__all__
    assert {"open_cache", "open_secrets", "Item", "ObjectInfo", "Message"} <= set(overcast.__all__)
    public = {n for n, v in vars(overcast).items() if not n.startswith("_") and not isinstance(v, type(sys))}
    public -= {"annotations", "Path", "open_resource"}  # imported for use inside the module
    assert public <= set(overcast.__all__), public - set(overcast.__all__)


HEAVY = ["boto3", "botocore", "google", "azure", "redis", "psycopg", "momento", "typer", "rich", "uvicorn", "croniter"]


def test_import_overcast_loads_no_cloud_sdk_nor_cli() -> None:
    code = (
        "import json, sys\n"
        "import overcast\n"
        "app = overcast.App('probe')\n"
        "app.kv('users'); app.bucket('files'); app.topic('events')\n"
        f"heavy = {HEAVY!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(done.stdout) == []


def test_the_probe_can_see_a_heavy_module() -> None:
    # The check above must be able to fail: the same probe notices a module that was loaded.
    code = f"import json, sys, rich\nprint(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "rich" in json.loads(done.stdout)
