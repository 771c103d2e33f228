"""``overcast deploy`` / ``destroy``: run OpenTofu or Terraform on a written plan.

Overcast generates and packages; the deploying is Terraform's (its state, its locking,
its prompts). The tool is ``$OVERCAST_TERRAFORM`` if set, else ``tofu``, else
``terraform`` on ``PATH``; without one the plan stays where it was written and the error
says how to install one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError

__all__ = ["TOOLS", "apply", "destroy", "find_tool"]

TOOLS = ("tofu", "terraform")
INSTALL = (
    "install OpenTofu (https://opentofu.org/docs/intro/install/) or Terraform "
    "(https://developer.hashicorp.com/terraform/install) and run this again"
)


def find_tool() -> str | None:
    """The path of the tool to run, or None when none is installed."""
    named = os.environ.get("OVERCAST_TERRAFORM")
    if named:
        return shutil.which(named) or (named if Path(named).is_file() else None)
    for tool in TOOLS:
        found = shutil.which(tool)
        if found:
            return found
    return None


def _tool(folder: Path, command: str) -> str:
    tool = find_tool()
    if tool is None:
        named = os.environ.get("OVERCAST_TERRAFORM")
        what = f"OVERCAST_TERRAFORM={named} is not an executable" if named else "neither tofu nor terraform is on PATH"
        raise ConfigError(
            f"{what}: {INSTALL}. The plan is in {folder}; to {command} by hand: "
            f"cd {folder} && tofu init && tofu {command}"
        )
    return tool


def _run(tool: str, folder: Path, steps: Sequence[Sequence[str]]) -> int:
    """Run each step in ``folder`` with the terminal attached (its output, its prompts);
    the first failure's exit status, else 0."""
    for step in steps:
        done = subprocess.run([tool, *step], cwd=folder, check=False)
        if done.returncode != 0:
            return done.returncode
    return 0


def apply(folder: Path, *, auto_approve: bool = False) -> int:
    """``init`` then ``apply`` (which shows the plan and, unless ``auto_approve``, asks)."""
    tool = _tool(folder, "apply")
    step = ["apply", "-input=false", "-auto-approve"] if auto_approve else ["apply"]
    return _run(tool, folder, [["init", "-input=false"], step])


def destroy(folder: Path, *, auto_approve: bool = False) -> int:
    """``init`` then ``destroy`` of everything the plan in ``folder`` created."""
    tool = _tool(folder, "destroy")
    step = ["destroy", "-input=false", "-auto-approve"] if auto_approve else ["destroy"]
    return _run(tool, folder, [["init", "-input=false"], step])
