"""What every console view shares: templates (autoescaped), the session token, forms, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from ....errors import ConfigError, Conflict, InvalidArgument, NotFound, NotSupported, OvercastError
from .guard import COOKIE, HEADER, new_token, token_matches

if TYPE_CHECKING:
    from . import Console

__all__ = ["BASE", "Refused", "error_page", "form_of", "page", "status_of"]

BASE = "/_overcast"
HERE = Path(__file__).parent
#: a form larger than this is refused before it is parsed (a KV item is at most 400 KB as JSON)
MAX_FORM_BYTES = 2 * 1024 * 1024


class Refused(Exception):
    """A request the console turns away, with the status and the reason shown to the user."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def _templates() -> Any:
    from jinja2 import Environment, FileSystemLoader
    from starlette.templating import Jinja2Templates

    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True)
    env.filters["pretty"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    return Jinja2Templates(env=env)


TEMPLATES = _templates()


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    """Render template ``name``; a first visit gets its session token as a cookie."""
    console = console_of(request)
    token = request.cookies.get(COOKIE) or new_token()
    context = {
        "base": BASE,
        "app": console.app,
        "token": token,
        "nav": request.url.path.removeprefix(BASE).strip("/").split("/")[0] or "resources",
        **context,
    }
    response: Response = TEMPLATES.TemplateResponse(request, name, context, status_code=status)
    if request.cookies.get(COOKIE) != token:
        response.set_cookie(COOKIE, token, path=BASE, httponly=True, samesite="strict")
    return response


def status_of(error: BaseException) -> int:
    if isinstance(error, Conflict):
        return 409
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, (InvalidArgument, ConfigError, NotSupported, ValueError)):
        return 400
    return 502


def error_page(request: Request, error: BaseException) -> Response:
    """An error as a page: the status it maps to and its message (never a traceback)."""
    if isinstance(error, Refused):
        status, message = error.status, str(error)
    else:
        status = status_of(error)
        message = str(error) if isinstance(error, (OvercastError, ValueError)) else f"{type(error).__name__}: {error}"
    return page(request, "error.html", {"status": status, "message": message}, status)


async def form_of(request: Request) -> dict[str, str]:
    """The request's urlencoded form, once its session token is checked (CSRF)."""
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        raise Refused(413, f"the form is larger than {MAX_FORM_BYTES} bytes")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise Refused(413, f"the form is larger than {MAX_FORM_BYTES} bytes")
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    check_token(request, form.get("token"))
    return form


def check_token(request: Request, given: str | None = None) -> None:
    """Refuse a state-changing request without the session's token in its form or header."""
    if not token_matches(request.cookies.get(COOKIE), given or request.headers.get(HEADER)):
        raise Refused(403, "missing or wrong session token (CSRF); reload the console page and try again")
