"""HTTP events on Lambda: API Gateway REST (v1), HTTP API (v2), ALB and function URLs to an
ASGI request, and the ASGI response back to the shape each source expects.

One adapter per source, each a pair of functions: ``scope(event, base_path)`` builds the
ASGI scope and body, ``response(event, status, headers, body)`` the reply. Written for the
warm path: no per-request objects beyond the scope and the reply, nothing imported late.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from operator import countOf
from typing import Any
from urllib.parse import unquote, urlencode

from ...runtime.http import forwarded_scheme, is_host

__all__ = ["HTTP_ADAPTERS", "HttpAdapter", "MalformedEvent", "adapter_for", "is_text"]

Headers = list[tuple[bytes, bytes]]
Scope = dict[str, Any]

_ASGI = {"version": "3.0", "spec_version": "2.3"}
_TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/javascript",
        "application/ecmascript",
        "application/xml",
        "application/x-www-form-urlencoded",
        "application/graphql",
        "application/x-ndjson",
        "image/svg+xml",
    }
)


def is_text(content_type: str | None, content_encoding: str | None) -> bool:
    """Whether a response body travels as text: a textual media type and no content coding."""
    if not content_type or (content_encoding and content_encoding.strip().lower() != "identity"):
        return False
    mime = content_type.partition(";")[0].strip().lower()
    return mime.startswith("text/") or mime in _TEXT_TYPES or mime.endswith(("+json", "+xml"))


class MalformedEvent(ValueError):
    """An HTTP event its source could not have sent (a field of the wrong type): answered 400."""


def _text(value: Any, what: str, default: str | None = None) -> str | None:
    """``value`` if it is a string; ``default`` if it is absent (None); else :class:`MalformedEvent`."""
    if value is None:
        return default
    if not isinstance(value, str):
        raise MalformedEvent(f"{what} is a {type(value).__name__}, not a string")
    return value


def _object(value: Any, what: str) -> dict[str, Any]:
    """``value`` if it is a JSON object, ``{}`` if absent; else :class:`MalformedEvent`."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedEvent(f"{what} is a {type(value).__name__}, not an object")
    return value


def _request_body(event: dict[str, Any]) -> bytes:
    body = _text(event.get("body"), "body")
    if not body:
        return b""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body, validate=True)  # binascii.Error is a ValueError: 400
    return body.encode()


#: :func:`is_text` by content type, for replies without a content coding: an app sends the same few
_TEXTUAL: dict[str | None, bool] = {}
_MAX_TEXTUAL = 64


def _response_body(body: bytes, content_type: str | None, content_encoding: str | None) -> tuple[str, bool]:
    """The body as the sources carry it: text when it is text (and valid UTF-8), else base64."""
    if not body:
        return "", False
    textual = _TEXTUAL.get(content_type) if content_encoding is None else None
    if textual is None:
        textual = is_text(content_type, content_encoding)
        if content_encoding is None and len(_TEXTUAL) < _MAX_TEXTUAL:
            _TEXTUAL[content_type] = textual
    if textual:
        try:
            return body.decode(), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode(), True


#: the characters of a client's IPv4 or IPv6 address (2 to 45 of them)
_ADDRESS_CHARS = "0123456789ABCDEFabcdef:."


def _client(ip: Any) -> tuple[str, int] | None:
    """The scope's ``client``: ``ip`` if it is an address (by its characters: str.strip, at C speed)."""
    if isinstance(ip, str) and 2 <= len(ip) <= 45 and not ip.strip(_ADDRESS_CHARS):
        return (ip, 0)
    return None


def _server(host: Any, port: str | None, scheme: str, *, checked: bool = False) -> tuple[str, int]:
    """The scope's ``server``: from ``host`` (a Host header's value, ``checked`` already, or the
    event's domain name), else the function's own name and the scheme's port."""
    if not host or not isinstance(host, str) or not (checked or is_host(host)):
        return ("lambda", 443 if scheme == "https" else 80)
    name, sep, given = host.rpartition(":")
    if sep and given.isdigit() and "]" not in given:
        return (name, int(given))
    return (host, int(port) if port and port.isascii() and port.isdigit() else (443 if scheme == "https" else 80))


def _strip(path: str, base_path: str) -> str:
    if base_path and path.startswith(base_path) and (len(path) == len(base_path) or path[len(base_path)] == "/"):
        return path[len(base_path) :] or "/"
    return path


#: the scope's ``server`` by Host header, forwarded port and scheme: a function serves the same
#: few hosts, so each is checked and split once (bounded, like the header names)
_SERVERS: dict[tuple[bytes, bytes | None, str], tuple[str, int]] = {}
_MAX_SERVERS = 256
#: what X-Forwarded-Proto almost always says, looked up before calling forwarded_scheme
_PLAIN_SCHEMES = {b"https": "https", b"http": "http"}


def _finish_scope(
    method: Any,
    raw_path: Any,
    query: bytes,
    headers: Headers,
    found: dict[bytes, bytes],
    client_ip: Any,
    base_path: str,
    event: dict[str, Any],
) -> Scope:
    if not isinstance(method, str) or not method.isascii() or not method.isalpha():
        raise MalformedEvent(f"HTTP method {method!r:.40} is not a method")
    proto = found.get(b"x-forwarded-proto")
    scheme = _PLAIN_SCHEMES.get(proto) or forwarded_scheme(proto)  # type: ignore[arg-type]
    raw = raw_path if type(raw_path) is str and not base_path else _strip(_text(raw_path, "path") or "/", base_path)
    host_header = found.get(b"host")
    port = found.get(b"x-forwarded-port")
    if host_header is not None:
        server = _SERVERS.get((host_header, port, scheme))
        if server is None:
            host = host_header.decode()
            if not is_host(host):
                raise MalformedEvent(f"Host header {host_header!r:.60} is not a host")  # RFC 9112: answered 400
            server = _server(host, port.decode() if port else None, scheme, checked=True)
            if len(_SERVERS) < _MAX_SERVERS:
                _SERVERS[(host_header, port, scheme)] = server
    else:
        server = _server(event["requestContext"].get("domainName"), port.decode() if port else None, scheme)
    return {
        "type": "http",
        "asgi": _ASGI,
        "http_version": "1.1",
        "method": method,
        "scheme": scheme,
        "path": unquote(raw) if "%" in raw else raw,
        "raw_path": raw.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": _client(client_ip),
        "server": server,
        "aws.event": event,
    }


_SCOPE_HEADERS = frozenset({b"host", b"x-forwarded-proto", b"x-forwarded-port", b"x-forwarded-for"})


def _found(headers: Headers) -> dict[bytes, bytes]:
    """The request headers by name, the last of each, for the few the scope itself needs
    (``_SCOPE_HEADERS``): ``dict`` keeps the last value of a repeated name, at C speed."""
    return dict(headers)


# -- API Gateway REST (v1) and HTTP API payload 1.0 ---------------------------------------


#: header names as the scope carries them (lower case, bytes), by the name an event spells;
#: the same few names come with every request, and a bounded cache spares re-encoding them
_NAMES: dict[str, bytes] = {}
_MAX_NAMES = 512


def _header_pairs(given: Any, what: str, *, multi: bool) -> Headers:
    """The (name, value) pairs of a ``headers`` or ``multiValueHeaders`` object; null values left out.

    The warm path of every HTTP invocation: one loop, no call per header."""
    pairs: Headers = []
    append = pairs.append
    names = _NAMES
    for name, value in _object(given, what).items():
        if value is None:
            continue
        key = names.get(name)
        if key is None:
            key = name.lower().encode()
            if len(names) < _MAX_NAMES:
                names[name] = key
        if not multi:
            if not isinstance(value, str):
                raise _not_string(what, name, value)
            append((key, value.encode()))
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, str):
                    append((key, item.encode()))
                elif item is not None:
                    raise _not_string(what, name, item)
        else:
            raise MalformedEvent(f"{what}[{name!r:.40}] is a {type(value).__name__}, not a list")
    return pairs


def _not_string(what: str, name: str, value: Any) -> MalformedEvent:
    return MalformedEvent(f"{what}[{name!r:.40}] holds a {type(value).__name__}, not a string")


def _count_values(given: Any, what: str) -> int:
    """How many headers ``headers`` holds (null values left out), checked as
    :func:`_header_pairs` checks them, without building the pairs."""
    given = _object(given, what)
    try:
        "".join(given.values())  # every value a string (the usual event): checked at C speed
        return len(given)
    except TypeError:
        pass
    count = 0
    for name, value in given.items():
        if isinstance(value, str):
            count += 1
        elif value is not None:
            raise _not_string(what, name, value)
    return count


def _one_value_pairs(multi: Any) -> Headers | None:
    """The pairs of a ``multiValueHeaders`` whose every header holds one string under a name seen
    before (what API Gateway sends), in one comprehension; else None, and :func:`_header_pairs`
    builds them, or raises the error the event deserves. Gives what :func:`_header_pairs` gives."""
    if type(multi) is not dict or countOf(map(type, multi.values()), list) != len(multi):  # every value a list
        return None
    names = _NAMES
    try:
        # KeyError: a name not cached yet; ValueError: not one value (or not UTF-8: raised again
        # by _header_pairs); AttributeError: a value that is no string (None included)
        return [(names[name], value.encode()) for name, (value,) in multi.items()]
    except (KeyError, ValueError, AttributeError):
        return None


def _v1_headers(event: dict[str, Any]) -> Headers:
    multi = event.get("multiValueHeaders")
    if not multi:
        return _header_pairs(event.get("headers"), "headers", multi=False)
    given = event.get("headers")
    single_count = _count_values(given, "headers")  # checked, but built only when it adds a header
    headers = _one_value_pairs(multi)
    if headers is None:
        headers = _header_pairs(multi, "multiValueHeaders", multi=True)
    if len(headers) != len(multi):  # some header came more than once: browsers send one cookie header
        cookies = [value for name, value in headers if name == b"cookie"]
        if len(cookies) > 1:
            headers = [h for h in headers if h[0] != b"cookie"]
            headers.append((b"cookie", b"; ".join(cookies)))
    if single_count != len(multi):  # a header in one map but not the other
        known = {name for name, _ in headers}
        single = _header_pairs(given, "headers", multi=False)
        headers.extend((name, value) for name, value in single if name not in known)
    return headers


def _v1_query(event: dict[str, Any]) -> bytes:
    params = event.get("multiValueQueryStringParameters") or event.get("queryStringParameters")
    return urlencode(params, doseq=True).encode() if params else b""


def _v1_scope(event: dict[str, Any], base_path: str) -> tuple[Scope, bytes]:
    headers = _v1_headers(event)
    identity = event["requestContext"].get("identity")
    if type(identity) is not dict:
        identity = _object(identity, "requestContext.identity")
    scope = _finish_scope(
        event["httpMethod"],
        event.get("path") or "/",
        _v1_query(event),
        headers,
        dict(headers),  # _found(headers), without the call
        identity.get("sourceIp"),
        base_path,
        event,
    )
    body = event.get("body")
    return scope, body.encode() if type(body) is str and not event.get("isBase64Encoded") else _request_body(event)


#: response header names as replies carry them (str, lower case), by the bytes the app sent
_REPLY_NAMES: dict[bytes, str] = {}


def _split_headers(headers: Headers) -> tuple[dict[str, str], dict[str, list[str]], str | None, str | None]:
    """Single-valued headers, the repeated ones as lists, and the content type and coding."""
    names = _REPLY_NAMES
    try:  # the usual reply: names sent before, none twice; one comprehension
        single = {names[raw_name]: raw_value.decode("latin-1") for raw_name, raw_value in headers}
    except (KeyError, TypeError, AttributeError):
        single = {}  # the loop below answers (or raises) as for any other reply
    if single and len(single) == len(headers):
        return single, {}, single.get("content-type"), single.get("content-encoding")
    single = {}
    multi: dict[str, list[str]] = {}
    for raw_name, raw_value in headers:
        name = names.get(raw_name) if type(raw_name) is bytes else None
        if name is None:
            name = raw_name.decode("latin-1").lower()
            if len(names) < _MAX_NAMES and type(raw_name) is bytes:
                names[raw_name] = name
        value = raw_value.decode("latin-1")
        if name in multi:
            multi[name].append(value)
        elif name in single:
            multi[name] = [single.pop(name), value]
        else:
            single[name] = value
    return single, multi, single.get("content-type"), single.get("content-encoding")


def _v1_response(event: dict[str, Any], status: int, headers: Headers, body: bytes) -> dict[str, Any]:
    single, multi, ctype, coding = _split_headers(headers)
    if body and coding is None and _TEXTUAL.get(ctype):  # text (_response_body's usual answer)
        try:
            text, encoded = body.decode(), False
        except UnicodeDecodeError:
            text, encoded = _response_body(body, ctype, coding)
    else:
        text, encoded = _response_body(body, ctype, coding)
    return {
        "statusCode": status,
        "headers": single,
        "multiValueHeaders": multi,
        "body": text,
        "isBase64Encoded": encoded,
    }


# -- HTTP API payload 2.0 and function URLs -------------------------------------------------


def _v2_scope(event: dict[str, Any], base_path: str) -> tuple[Scope, bytes]:
    http = _object(event["requestContext"]["http"], "requestContext.http")
    headers = _header_pairs(event.get("headers"), "headers", multi=False)
    cookies = event.get("cookies")
    if cookies:
        if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
            raise MalformedEvent("cookies is not a list of strings")
        headers.append((b"cookie", "; ".join(cookies).encode()))
    raw_path = event.get("rawPath") or http.get("path") or "/"
    scope = _finish_scope(
        http["method"],
        raw_path,
        (_text(event.get("rawQueryString"), "rawQueryString") or "").encode(),
        headers,
        _found(headers),
        http.get("sourceIp"),
        base_path,
        event,
    )
    return scope, _request_body(event)


def _v2_response(event: dict[str, Any], status: int, headers: Headers, body: bytes) -> dict[str, Any]:
    out_headers: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name == "set-cookie":
            cookies.append(value)
        elif name in out_headers:
            out_headers[name] = f"{out_headers[name]},{value}"
        else:
            out_headers[name] = value
    text, encoded = _response_body(body, out_headers.get("content-type"), out_headers.get("content-encoding"))
    reply: dict[str, Any] = {"statusCode": status, "headers": out_headers, "body": text, "isBase64Encoded": encoded}
    if cookies:
        reply["cookies"] = cookies
    return reply


# -- Application Load Balancer ---------------------------------------------------------------


def _alb_query(event: dict[str, Any]) -> bytes:
    # ALB passes the query as the client sent it, still percent-encoded: keep it byte for byte.
    multi = _object(event.get("multiValueQueryStringParameters"), "multiValueQueryStringParameters")
    if multi:
        pairs = []
        for k, values in multi.items():
            if not isinstance(values, list):
                raise MalformedEvent(f"multiValueQueryStringParameters[{k!r:.40}] is not a list")
            pairs += [f"{k}={_text(v, 'a query parameter', '')}" for v in values]
        return "&".join(pairs).encode()
    single = _object(event.get("queryStringParameters"), "queryStringParameters")
    if single:
        return "&".join(f"{k}={_text(v, 'a query parameter', '')}" for k, v in single.items()).encode()
    return b""


def _alb_scope(event: dict[str, Any], base_path: str) -> tuple[Scope, bytes]:
    headers = _v1_headers(event)
    found = _found(headers)
    client = found.get(b"x-forwarded-for", b"").decode().split(",")[0].strip() or None
    scope = _finish_scope(
        event["httpMethod"], event.get("path") or "/", _alb_query(event), headers, found, client, base_path, event
    )
    return scope, _request_body(event)


def _casings(name: str, count: int) -> list[str]:
    """``count`` spellings of ``name`` differing in case: how single-value ALB replies repeat a header."""
    out: list[str] = []
    letters = [i for i, ch in enumerate(name) if ch.lower() != ch.upper()]
    for n in range(1 << len(letters)):
        chars = list(name)
        for bit, i in enumerate(letters):
            if n >> bit & 1:
                chars[i] = chars[i].upper()
        out.append("".join(chars))
        if len(out) == count:
            break
    return out


def _alb_response(event: dict[str, Any], status: int, headers: Headers, body: bytes) -> dict[str, Any]:
    single, multi, ctype, coding = _split_headers(headers)
    text, encoded = _response_body(body, ctype, coding)
    from http import HTTPStatus

    try:
        description = f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        description = str(status)
    reply: dict[str, Any] = {
        "statusCode": status,
        "statusDescription": description,
        "isBase64Encoded": encoded,
        "body": text,
    }
    if "multiValueHeaders" in event:
        reply["multiValueHeaders"] = {**{k: [v] for k, v in single.items()}, **multi}
    else:
        for name, values in multi.items():
            for spelled, value in zip(_casings(name, len(values)), values, strict=False):
                single[spelled] = value
        reply["headers"] = single
    return reply


class HttpAdapter:
    """One HTTP source: how to recognise its events, build the scope, and shape the reply."""

    __slots__ = ("name", "response", "scope")

    def __init__(
        self,
        name: str,
        scope: Callable[[dict[str, Any], str], tuple[Scope, bytes]],
        response: Callable[[dict[str, Any], int, Headers, bytes], dict[str, Any]],
    ) -> None:
        self.name = name
        self.scope = scope
        self.response = response


API_GATEWAY_V1 = HttpAdapter("apigateway-rest", _v1_scope, _v1_response)
HTTP_API_V2 = HttpAdapter("apigateway-http", _v2_scope, _v2_response)
FUNCTION_URL = HttpAdapter("function-url", _v2_scope, _v2_response)
ALB = HttpAdapter("alb", _alb_scope, _alb_response)
HTTP_ADAPTERS = (API_GATEWAY_V1, HTTP_API_V2, FUNCTION_URL, ALB)


def adapter_for(event: Any) -> HttpAdapter | None:
    """The adapter for an HTTP event, or None when ``event`` is not an HTTP request."""
    if type(event) is not dict:
        return None
    context = event.get("requestContext")
    if type(context) is not dict:
        return None
    if "http" in context and event.get("version") == "2.0":
        if "routeArn" in event:  # an authorizer's request, not the route's
            return None
        domain = context.get("domainName")
        return FUNCTION_URL if isinstance(domain, str) and ".lambda-url." in domain else HTTP_API_V2
    if "elb" in context:
        return ALB
    if "httpMethod" in event and "methodArn" not in event and "connectionId" not in context:
        return API_GATEWAY_V1
    return None
