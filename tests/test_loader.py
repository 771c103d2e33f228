"""Finding the App a command serves: module:attribute, a folder with overcast.toml, or the current folder."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

import overcast
from overcast.errors import ConfigError
from overcast.loader import load_app, parse_entry

TOML = '[app]\nentry = "{entry}"\n'


def _write_app(folder: Path, *, module: str = "app", name: str | None = None, entry: str | None = None) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    app_name = name or f"a{uuid.uuid4().hex[:10]}"
    (folder / f"{module}.py").write_text(f"import overcast\napp = overcast.App({app_name!r})\nnot_an_app = 42\n")
    if entry is not None:
        (folder / "overcast.toml").write_text(TOML.format(entry=entry))
    return app_name


def test_folder_with_overcast_toml_loads_its_entry(tmp_path: Path) -> None:
    name = _write_app(tmp_path / "svc", module="service", entry="service:app")
    app = load_app(str(tmp_path / "svc"))
    assert isinstance(app, overcast.App)
    assert app.name == name
    assert str((tmp_path / "svc").resolve()) in sys.path


def test_default_is_the_current_folder(tmp_path: Path) -> None:
    name = _write_app(tmp_path, entry="app:app")
    assert load_app(cwd=tmp_path).name == name


def test_module_attribute_relative_to_the_current_folder(tmp_path: Path) -> None:
    name = _write_app(tmp_path, module="svc_mod")
    assert load_app("svc_mod:app", cwd=tmp_path).name == name


def test_two_folders_with_the_same_module_name_each_load_their_own(tmp_path: Path) -> None:
    first = _write_app(tmp_path / "one", entry="app:app")
    second = _write_app(tmp_path / "two", entry="app:app")
    assert load_app(str(tmp_path / "one")).name == first
    assert load_app(str(tmp_path / "two")).name == second


@pytest.mark.parametrize(
    ("setup", "spec", "message"),
    [
        ("none", None, "no overcast.toml"),
        ("toml-without-entry", None, "[app] entry is missing"),
        ("app", "missing_module:app", "cannot import module 'missing_module'"),
        ("app", "app:nothing", "has no attribute 'nothing'"),
        ("app", "app:not_an_app", "is a int, not an overcast.App"),
        ("app", "app:", "must be 'module:attribute'"),
        ("toml-missing-module", None, "cannot import module 'gone'"),
        ("none", "no/such/folder", "not a folder"),
    ],
)
def test_clear_errors(tmp_path: Path, setup: str, spec: str | None, message: str) -> None:
    if setup == "app":
        _write_app(tmp_path)
    elif setup == "toml-without-entry":
        (tmp_path / "overcast.toml").write_text("[app]\n")
    elif setup == "toml-missing-module":
        (tmp_path / "overcast.toml").write_text(TOML.format(entry="gone:app"))
    with pytest.raises(ConfigError) as info:
        load_app(spec, cwd=tmp_path)
    assert message in str(info.value)


def test_an_import_error_inside_the_app_is_not_disguised(tmp_path: Path) -> None:
    (tmp_path / "broken_app.py").write_text("import a_dependency_that_is_not_installed\n")
    with pytest.raises(
        ConfigError, match="imports 'a_dependency_that_is_not_installed', which is not installed"
    ) as err:
        load_app("broken_app:app", cwd=tmp_path)
    assert "pip install a_dependency_that_is_not_installed" in str(err.value)
    assert isinstance(err.value.__cause__, ModuleNotFoundError)  # the original, for a traceback


def test_parse_entry() -> None:
    assert parse_entry(" pkg.mod : app ") == ("pkg.mod", "app")
    with pytest.raises(ConfigError):
        parse_entry("pkg.mod")


def test_create_asgi_factory_reads_the_app_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from overcast.loader import create_asgi

    (tmp_path / "web.py").write_text(
        "import overcast\napp = overcast.App('factory')\n"
        "async def asgi(scope, receive, send):\n    pass\n"
        "app.http(asgi)\n"
    )
    monkeypatch.setenv("OVERCAST_APP", "web:app")
    monkeypatch.setenv("OVERCAST_APP_DIR", str(tmp_path))
    served = create_asgi()
    assert served.app is sys.modules["web"].asgi  # behind only the health route
