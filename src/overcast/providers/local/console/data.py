"""Console views of the data: KV items (browse, view, edit on version, delete), objects, queues."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ....errors import Conflict, NotSupported
from .render import BASE, Refused, check_token, console_of, error_page, form_of, page

__all__ = [
    "bucket_delete",
    "bucket_list",
    "bucket_object",
    "bucket_upload",
    "kv_delete",
    "kv_item",
    "kv_list",
    "kv_save",
]

PAGE_SIZE = 50
#: an upload larger than this is refused (the embedded bucket keeps objects in memory or a file)
MAX_UPLOAD_BYTES = 64 * 1024 * 1024


def handle_of(request: Request, kind: str) -> Any:
    """The app's ``kind`` resource named in the path, or a 404 naming what exists."""
    app = console_of(request).app
    name = request.path_params["name"]
    handle = app.resources.get(name)
    if handle is None or handle.kind != kind:
        names = sorted(n for n, h in app.resources.items() if h.kind == kind)
        raise Refused(404, f"{app.name} has no {kind} {name!r} (its {kind} resources: {', '.join(names) or 'none'})")
    return handle


def _link(path: str, **params: str | None) -> str:
    query = urlencode({k: v for k, v in params.items() if v})
    return f"{BASE}/{path}" + (f"?{query}" if query else "")


async def kv_list(request: Request) -> Response:
    """One page of items whose key starts with ``prefix``; ``cursor`` continues a listing."""
    try:
        kv = handle_of(request, "kv")
        prefix = request.query_params.get("prefix", "")
        cursor = request.query_params.get("cursor") or None
        result = await kv.page(prefix, limit=PAGE_SIZE, cursor=cursor)
    except Exception as exc:
        return error_page(request, exc)
    name = kv.resource_name
    rows = [
        {"key": item.key, "version": item.version, "preview": json.dumps(item.value, ensure_ascii=False)[:120]}
        for item in result.items
    ]
    more = _link(f"kv/{quote(name)}", prefix=prefix, cursor=result.cursor) if result.cursor else None
    return page(request, "kv_list.html", {"name": name, "prefix": prefix, "rows": rows, "more": more})


async def kv_item(request: Request) -> Response:
    """One item as JSON, ready to edit; a key that does not exist opens an empty new item."""
    try:
        kv = handle_of(request, "kv")
        key = request.query_params.get("key", "")
        item = await kv.get(key) if key else None
    except Exception as exc:
        return error_page(request, exc)
    context = {
        "name": kv.resource_name,
        "key": key,
        "item": item,
        "text": json.dumps(item.value, indent=2, ensure_ascii=False) if item else "{\n}",
        "version": item.version if item else "",
        "saved": request.query_params.get("saved"),
    }
    return page(request, "kv_item.html", context)


async def kv_save(request: Request) -> Response:
    """Store an edited item, only if its version is still the one the page showed (or it is new)."""
    try:
        kv = handle_of(request, "kv")
        form = await form_of(request)
        key, text, version = form.get("key", ""), form.get("value", ""), form.get("version") or None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise Refused(400, f"{kv.resource_name}/{key}: the value is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise Refused(400, f"{kv.resource_name}/{key}: the value must be a JSON object, got {type(value).__name__}")
        await kv.put(key, value, if_version=version, if_absent=version is None)
    except Conflict as exc:
        return await _conflict(request, kv, key, text, exc)
    except Exception as exc:
        return error_page(request, exc)
    return RedirectResponse(_link(f"kv/{quote(kv.resource_name)}/item", key=key, saved="1"), status_code=303)


async def _conflict(request: Request, kv: Any, key: str, text: str, exc: Conflict) -> Response:
    """409: the item changed since the page showed it; show what it is now beside the edit."""
    current = await kv.get(key)
    context = {
        "name": kv.resource_name,
        "key": key,
        "item": current,
        "text": text,
        "version": current.version if current else "",
        "conflict": str(exc),
        "current": json.dumps(current.value, indent=2, ensure_ascii=False) if current else None,
    }
    return page(request, "kv_item.html", context, status=409)


async def kv_delete(request: Request) -> Response:
    """Delete an item, only if its version is still the one the page showed."""
    try:
        kv = handle_of(request, "kv")
        form = await form_of(request)
        key = form.get("key", "")
        await kv.delete(key, if_version=form.get("version") or None)
    except Exception as exc:
        return error_page(request, exc)
    return RedirectResponse(_link(f"kv/{quote(kv.resource_name)}", deleted=key), status_code=303)


async def bucket_list(request: Request) -> Response:
    try:
        bucket = handle_of(request, "bucket")
        prefix = request.query_params.get("prefix", "")
        cursor = request.query_params.get("cursor") or None
        result = await bucket.page(prefix, limit=PAGE_SIZE, cursor=cursor)
    except Exception as exc:
        return error_page(request, exc)
    name = bucket.resource_name
    more = _link(f"bucket/{quote(name)}", prefix=prefix, cursor=result.cursor) if result.cursor else None
    context = {"name": name, "prefix": prefix, "rows": result.objects, "more": more}
    return page(request, "bucket.html", context)


async def bucket_object(request: Request) -> Response:
    """An object as a download, never rendered: the console's origin must not run what a bucket holds."""
    try:
        bucket = handle_of(request, "bucket")
        key = request.query_params.get("key", "")
        data = await bucket.get(key)
    except Exception as exc:
        return error_page(request, exc)
    filename = quote(key.rsplit("/", 1)[-1] or "object")
    headers = {
        "content-disposition": f"attachment; filename*=UTF-8''{filename}",
        "content-security-policy": "sandbox",
    }
    return Response(data, media_type="application/octet-stream", headers=headers)


async def bucket_upload(request: Request) -> Response:
    """Store the request's body at ``?key=`` (the page's script sends a chosen file this way)."""
    try:
        bucket = handle_of(request, "bucket")
        check_token(request)
        key = request.query_params.get("key", "")
        if int(request.headers.get("content-length") or 0) > MAX_UPLOAD_BYTES:
            raise Refused(413, f"{bucket.resource_name}/{key}: uploads are limited to {MAX_UPLOAD_BYTES} bytes here")
        data = await request.body()
        content_type = request.headers.get("content-type") or None
        info = await bucket.put(key, data, content_type=content_type)
    except Exception as exc:
        return error_page(request, exc)
    return Response(json.dumps({"key": info.key, "size": info.size}), media_type="application/json", status_code=201)


async def bucket_delete(request: Request) -> Response:
    try:
        bucket = handle_of(request, "bucket")
        form = await form_of(request)
        await bucket.delete(form.get("key", ""))
    except Exception as exc:
        return error_page(request, exc)
    return RedirectResponse(_link(f"bucket/{quote(bucket.resource_name)}", prefix=form.get("prefix")), status_code=303)


async def depth_of(queue: Any) -> int | None:
    """A queue's depth, or None where the provider cannot tell."""
    try:
        return int(await queue.depth())
    except (NotSupported, NotImplementedError):
        return None
