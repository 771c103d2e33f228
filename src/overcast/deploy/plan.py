"""``overcast plan``: the deployment model rendered by the target cloud's family, written to
``.overcast/build/TARGET/`` with the package it deploys.

The renderer is found through the family's declaration (``Family.deploy``), so the core
names no cloud. Everything is checked and rendered in memory first: on an error nothing
is written.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConfigError
from ..resources.registry import family_of_cloud, family_of_scheme, load_attribute
from .model import Deployment, build
from .package import Package, build_package, install_requirements, package_files, runtime_distributions

if TYPE_CHECKING:
    from ..app import App

__all__ = ["LAMBDA_ZIP_LIMIT", "Plan", "Renderer", "make_plan", "renderer_for", "write_plan"]

BUILD_DIR = Path(".overcast") / "build"
PACKAGE = "package.zip"
#: in the app's folder: the function's third-party dependencies, installed as wheels for its platform
REQUIREMENTS = "requirements.txt"
#: Lambda's limit on a zip uploaded directly (bytes); above it the plan warns
LAMBDA_ZIP_LIMIT = 50 * 1024 * 1024
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024


class Renderer(Protocol):
    """What a cloud family's ``deploy`` entry provides."""

    def entry_point(self, deployment: Deployment) -> dict[str, str]:
        """Files (archive name -> source) that the platform calls, added to the package."""
        ...

    def render(self, deployment: Deployment, package: Package) -> dict[str, Any]:
        """File name -> JSON document of the plan; raises ConfigError on what the cloud rejects."""
        ...

    def wheel_platform(self, deployment: Deployment) -> tuple[tuple[str, ...], str]:
        """The pip platform tags and Python version the function's wheels must be built for."""
        ...


@dataclass(frozen=True)
class Plan:
    deployment: Deployment
    package: Package
    documents: dict[str, Any]

    def files(self) -> dict[str, bytes]:
        """File name -> bytes, as written: sorted keys, two-space indent, a final newline."""
        out = {
            name: (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode() for name, doc in self.documents.items()
        }
        out[PACKAGE] = self.package.data
        return out

    @property
    def resource_count(self) -> int:
        """How many resources the plan's documents declare (every ``resource`` block)."""
        return sum(len(labelled) for doc in self.documents.values() for labelled in doc.get("resource", {}).values())

    def warnings(self) -> list[str]:
        """Lambda's limits the package is over: 50 MB zipped for a direct upload, 250 MB unzipped."""
        found = []
        if self.package.size > LAMBDA_ZIP_LIMIT:
            found.append(f"the package is {self.package.size / 1e6:.1f} MB, above Lambda's 50 MB for a direct upload")
        if self.package.unzipped_size > LAMBDA_UNZIPPED_LIMIT:
            found.append(
                f"the package unzips to {self.package.unzipped_size / 1e6:.1f} MB, above Lambda's 250 MB; "
                "trim requirements.txt (boto3 is in Lambda's runtime)"
            )
        return found


def renderer_for(deployment: Deployment) -> Renderer:
    family = family_of_cloud(deployment.cloud)
    if family is None:
        raise ConfigError(
            f"target {deployment.target!r}: no installed provider family is the cloud {deployment.cloud!r}"
        )
    if family.deploy is None:
        raise ConfigError(
            f"target {deployment.target!r}: the {family.name} family cannot make a deployment plan yet "
            "(overcast plan supports aws)"
        )
    renderer: Renderer = load_attribute(family.deploy)
    return renderer


def _families(deployment: Deployment) -> set[str]:
    """The provider families the package needs: the cloud's and every resource's."""
    names = {family.name for family in [family_of_cloud(deployment.cloud)] if family is not None}
    for resource in deployment.resources:
        family = family_of_scheme(resource.url.scheme)
        if family is not None:
            names.add(family.name)
    return names


def _runtimes(deployment: Deployment) -> set[str]:
    """The runtime entry points of the deployment's cloud (``lambda``), the ones packaged."""
    family = family_of_cloud(deployment.cloud)
    return set(family.runtimes) if family is not None else set()


def make_plan(app: App, target: str) -> Plan:
    """Build the model, the package and the plan's documents, in memory."""
    deployment = build(app, target)
    renderer = renderer_for(deployment)
    renderer.render(deployment, Package(b"", ()))  # what the cloud would reject, before any packaging
    platforms, python = renderer.wheel_platform(deployment)
    files = {
        **runtime_distributions(deployment.runtime_packages, python),
        **package_files(deployment.source_dir, _families(deployment), runtimes=_runtimes(deployment)),
    }
    requirements = _requirements(deployment.source_dir / REQUIREMENTS)
    if not requirements:
        return _finish(deployment, renderer, files)
    staging = Path(tempfile.mkdtemp(prefix="overcast-wheels-"))
    try:
        (staging / REQUIREMENTS).write_text("\n".join(requirements) + "\n")
        wheels = install_requirements(staging / REQUIREMENTS, platforms, python, staging / "site")
        return _finish(deployment, renderer, {**wheels, **files})
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _requirements(path: Path) -> list[str]:
    """The lines of ``requirements.txt`` but Overcast itself (the package carries its source,
    and its command line's dependencies stay out)."""
    if not path.is_file():
        return []
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    named = [line for line in lines if line and not line.startswith("#")]
    return [line for line in named if re.split(r"[\s\[<>=!~;@]", line, maxsplit=1)[0].lower() != "overcast"]


def _finish(deployment: Deployment, renderer: Renderer, files: dict[str, Path]) -> Plan:
    clash = sorted(set(files) & set(renderer.entry_point(deployment)))
    if clash:
        raise ConfigError(f"the app's folder has {', '.join(clash)}, which the generated entry point needs; rename it")
    package = build_package(files, renderer.entry_point(deployment))
    return Plan(deployment, package, renderer.render(deployment, package))


def write_plan(plan: Plan, out_dir: Path | None = None) -> Path:
    """Write the plan to ``out_dir`` (default ``.overcast/build/TARGET`` beside overcast.toml),
    replacing the files a previous plan wrote; anything else there (Terraform's state, a
    ``backend.tf.json`` of the user's) is kept."""
    folder = out_dir or plan.deployment.source_dir / BUILD_DIR / plan.deployment.target
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in plan.files().items():
        temporary = folder / f".{name}.tmp"
        temporary.write_bytes(data)
        shutil.move(temporary, folder / name)
    return folder
