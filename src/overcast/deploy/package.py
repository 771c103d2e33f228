"""The function's deployment package: a zip that is the same bytes for the same inputs.

It holds the app's folder (where ``overcast.toml`` sits, without tests, caches and hidden
folders), Overcast's runtime (without the CLI, the dev server's command line and the
provider families the target does not use) and the entry point the cloud calls. Entries
are sorted, every time stamp is ``SOURCE_DATE_EPOCH`` (else 1980-01-01) and every mode is
0644, so two builds from the same sources are byte-identical (reproducible-builds.org).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Package", "build_package", "install_requirements", "never_read", "package_files", "runtime_distributions"]

#: folders never packaged from the app's folder
_SKIP_DIRS = frozenset({"__pycache__", "tests", "test", "node_modules", "venv", "build", "dist"})
_SKIP_SUFFIXES = (".pyc", ".pyo", ".zip")
#: Overcast's own modules a deployed function never imports (they need typer, rich, uvicorn;
#: the cost engine and the deployment model run where `overcast` is invoked)
_SKIP_OVERCAST = frozenset({"cli.py", "__main__.py", "testing", "deploy", "cost"})


@dataclass(frozen=True)
class Package:
    """A built package: its bytes and what a plan says about it."""

    data: bytes
    files: tuple[str, ...]
    unzipped_size: int = 0

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def sha256_base64(self) -> str:
        """The hash as Lambda's ``source_code_hash`` takes it (base64 of the raw digest)."""
        return base64.b64encode(hashlib.sha256(self.data).digest()).decode()

    @property
    def size(self) -> int:
        return len(self.data)


def _epoch() -> tuple[int, int, int, int, int, int]:
    raw = os.environ.get("SOURCE_DATE_EPOCH")
    stamp = max(int(raw), 315532800) if raw and raw.isdigit() else 315532800  # zip starts at 1980
    return time.gmtime(stamp)[:6]


def _walk(root: Path, skip: frozenset[str]) -> Iterator[Path]:
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or path.name in skip or path.is_symlink():
            continue
        if path.is_dir():
            yield from _walk(path, skip)
        elif path.is_file() and not path.name.endswith(_SKIP_SUFFIXES) and not path.name.startswith("test_"):
            yield path


def package_files(app_dir: Path, families: Iterable[str], *, runtimes: Iterable[str] = ()) -> dict[str, Path]:
    """Archive name -> file: the app's folder, then Overcast's runtime for ``families``: of a
    family, only its Python modules the function may import (see :func:`_deploy_time_only`)."""
    import overcast

    files: dict[str, Path] = {}
    for path in _walk(app_dir, _SKIP_DIRS):
        files[path.relative_to(app_dir).as_posix()] = path
    source = Path(overcast.__file__).resolve().parent
    wanted = set(families)
    providers = source / "providers"
    skipped = _SKIP_OVERCAST | {"providers"}
    for path in _walk(source, skipped):
        files["overcast/" + path.relative_to(source).as_posix()] = path
    left_out = _deploy_time_only(wanted, set(runtimes))
    for path in _walk(providers, frozenset()):
        relative = path.relative_to(providers)
        module = "overcast.providers." + relative.with_suffix("").as_posix().replace("/", ".")
        if len(relative.parts) > 1 and (relative.parts[0] not in wanted or path.suffix != ".py"):
            continue  # another family's, or data (price tables, the dev console's assets)
        if module not in left_out and not _imports_cost_engine(path):
            files["overcast/providers/" + relative.as_posix()] = path
    return files


def _deploy_time_only(families: set[str], runtimes: set[str]) -> set[str]:
    """The modules of ``families`` a function never imports, as the families declare them:
    their deployment renderer, their prices, and their runtimes other than ``runtimes``
    (the local family's dev server)."""
    from ..resources.registry import families as declared

    found: set[str] = set()
    for family in declared().values():
        if family.name not in families:
            continue
        named = [family.deploy, family.pricing]
        named += [target for runtime, target in family.runtimes.items() if runtime not in runtimes]
        found.update(entry.partition(":")[0] for entry in named if entry)
    return found


def _imports_cost_engine(path: Path) -> bool:
    """A family's price-list refresher imports the cost engine, which is not packaged."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return "from ...cost" in text or "import overcast.cost" in text or "from overcast.cost" in text


#: what pip leaves that would make two builds differ, or that a function never reads
_PIP_NOISE = ("direct_url.json", "INSTALLER", "REQUESTED")


def install_requirements(requirements: Path, platforms: tuple[str, ...], python: str, into: Path) -> dict[str, Path]:
    """Install ``requirements.txt`` as wheels for the function's platform (``pip install
    --platform ... --only-binary=:all: --target``) and return archive name -> file.

    pip's own options come from its environment (``PIP_INDEX_URL``, ``PIP_FIND_LINKS``, ...).
    Overcast itself is skipped: the package carries its source.
    """
    import subprocess
    import sys

    from ..errors import ConfigError

    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--disable-pip-version-check"]
    command += [f"--platform={platform}" for platform in platforms]
    command += ["--implementation=cp", f"--python-version={python}", "--only-binary=:all:"]
    command += ["--target", str(into), "-r", str(requirements)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigError(
            f"{requirements}: pip could not install wheels for {', '.join(platforms)} (Python {python}): "
            f"{done.stderr.strip()[-1500:]}"
        )
    files: dict[str, Path] = {}
    for path in _walk(into, frozenset({"__pycache__", "bin", "tests", "test"})):
        name = path.relative_to(into).as_posix()
        top = name.split("/", 1)[0]
        if top == "overcast" or top.startswith("overcast-") or path.name in _PIP_NOISE:
            continue
        files[name] = path
    return files


def _applies(requirement: str, python: str) -> bool:
    """Whether a ``Requires-Dist`` entry applies on the function: never an extra's, and a
    ``python_version`` marker compared with the function's Python."""
    _, _, marker = requirement.partition(";")
    if "extra" in marker:
        return False
    import operator
    import re

    compare = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq}
    compare["!="] = operator.ne
    for op, version in re.findall(r"python_version\s*(<=|>=|==|!=|<|>)\s*[\"']([\d.]+)[\"']", marker):
        if not compare[op](tuple(map(int, python.split("."))), tuple(map(int, version.split(".")))):
            return False
    return True


def runtime_distributions(names: Iterable[str], python: str) -> dict[str, Path]:
    """Archive name -> file of the installed distributions ``names`` and what they require:
    the pure-Python packages Overcast's runtime imports (croniter for a cron schedule, a2wsgi
    for a WSGI app), copied from the environment that makes the plan."""
    import re
    from importlib.metadata import PackageNotFoundError, distribution

    from ..errors import ConfigError

    files: dict[str, Path] = {}
    pending, seen = list(names), set()
    while pending:
        name = pending.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        seen.add(key)
        try:
            found = distribution(name)
        except PackageNotFoundError:
            raise ConfigError(f"the function needs {name!r}, which is not installed here: pip install {name}") from None
        for entry in found.files or ():
            relative = str(entry)
            parts = set(relative.split("/")[:-1])
            if relative.startswith("..") or parts & _SKIP_DIRS or relative.endswith((".pyc", *_PIP_NOISE)):
                continue
            if relative.endswith((".so", ".pyd", ".dylib")):
                raise ConfigError(
                    f"{name} is not pure Python; list it in requirements.txt to get wheels for the function"
                )
            files[relative] = Path(str(found.locate_file(entry)))
        requires = [r for r in found.requires or () if _applies(r, python)]
        pending += [re.match(r"[A-Za-z0-9._-]+", r).group(0) for r in requires]  # type: ignore[union-attr]
    return files


def never_read(name: str) -> bool:
    """Whether a function never reads the archive entry ``name``: type stubs and ``py.typed``
    (for type checkers), a distribution's ``RECORD`` and SBOMs (for pip and auditors).
    Licences, ``entry_points.txt`` and ``METADATA``'s headers stay: ``importlib.metadata``
    reads them at run time (OpenTelemetry finds its context through an entry point)."""
    base = name.rsplit("/", 1)[-1]
    if base.endswith(".pyi") or base == "py.typed":
        return True
    parts = name.split("/")
    return parts[0].endswith(".dist-info") and len(parts) > 1 and (base == "RECORD" or parts[1] == "sboms")


def _metadata_headers(data: bytes) -> bytes:
    """A distribution's ``METADATA`` without its long description (the body after the
    headers): name, version and requirements are what ``importlib.metadata`` reads."""
    head, blank, _ = data.partition(b"\n\n")
    return head + b"\n" if blank else data


def build_package(files: dict[str, Path], extra: dict[str, str] | None = None) -> Package:
    """Zip ``files`` (archive name -> path) and ``extra`` (archive name -> text), reproducibly,
    without what a function never reads (:func:`never_read`)."""
    entries: dict[str, bytes] = {name: path.read_bytes() for name, path in files.items() if not never_read(name)}
    for name in entries:
        if name.endswith(".dist-info/METADATA"):
            entries[name] = _metadata_headers(entries[name])
    for name, text in (extra or {}).items():
        entries[name] = text.encode()
    stamp = _epoch()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.external_attr = 0o100644 << 16
            info.create_system = 3  # Unix, whatever builds it
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[name], compresslevel=9)
    return Package(buffer.getvalue(), tuple(sorted(entries)), sum(len(data) for data in entries.values()))
