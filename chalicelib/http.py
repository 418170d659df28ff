"""The one place where HTTP meets the core: body limits, JSON parsing, authentication, roles and
error rendering. Every route goes through `Api.route`, so no route handles any of it on its own.
"""
import functools
import json
import logging
import re
from datetime import UTC, datetime

from chalice import Response
from chalice.app import handle_extra_types

from chalicelib import tokens
from chalicelib.aws import AWS_FAULTS, aws_error_code
from chalicelib.core.errors import ForbiddenError, SlaError, ValidationError
from chalicelib.core.fields import check_document
from chalicelib.logs import log_event

MAX_BODY = 64 * 1024
MAX_DEPTH = 32  # arrays and objects inside each other; the deepest document the API takes has 5
# Every `Code` is the status's reason phrase in PascalCase followed by "Error" (413 keeps the phrase of
# RFC 2616, "Request Entity Too Large", as Chalice names it).
STATUS = {
    "BadRequestError": 400,
    "UnauthorizedError": 401,
    "ForbiddenError": 403,
    "NotFoundError": 404,
    "ConflictError": 409,
    "RequestEntityTooLargeError": 413,
    "UnsupportedMediaTypeError": 415,
    "ServiceUnavailableError": 503,
}
# JSON is UTF-8 by definition (RFC 8259); the charset is said anyway, for the clients that assume
# ISO-8859-1 without it (PowerShell's Invoke-RestMethod, a browser showing the raw answer).
JSON_CONTENT_TYPE = "application/json; charset=utf-8"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# A Host header as a URL may hold it: a name or IPv4 address, or a bracketed IPv6 address, and a port.
_HOST = re.compile(r"([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?")
logger = logging.getLogger("sla_clock.http")


class UnsupportedMediaTypeError(SlaError):
    code = "UnsupportedMediaTypeError"


def render_json(document):
    """`document` as compact JSON text whose characters stand as themselves ("系统", not \\u escapes).
    A lone surrogate cannot be encoded as UTF-8: it is written as its \\u escape, still valid JSON.
    (Input refuses them, so none is stored; the answer must not fail if one ever is.)"""
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=handle_extra_types)
    return _LONE_SURROGATE.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def json_response(body, status=200):
    return Response(body=render_json(body), status_code=status, headers={"Content-Type": JSON_CONTENT_TYPE})


def error_response(code, message, problems=()):
    """{"Code", "Message"}; a 400 for a document's fields also lists them, up to
    ValidationError.MAX_NAMED: "Errors": [{"Field", "Message"}] (the message names them too)."""
    body = {"Code": code, "Message": message}
    if problems:
        body["Errors"] = [{"Field": field, "Message": text} for field, text in problems[:ValidationError.MAX_NAMED]]
    return json_response(body, STATUS.get(code, 500))


def _depth_exceeds(document, limit):
    """Is any array or object of `document` nested more than `limit` levels deep? (Iterative: a
    recursive walk would hit the same stack limit the parser did.)"""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _check_json_media_type(content_type):
    """A body is JSON: a Content-Type of another media type (or charset) is a 415. None is taken as JSON."""
    if content_type is None:
        return
    media, *parameters = (part.strip().lower() for part in content_type.split(";"))
    charset = next((value.strip('"') for name, _, value in (p.partition("=") for p in parameters)
                    if name.strip() == "charset"), "utf-8")
    if media != "application/json" or charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaTypeError(
            f"Content-Type: the body must be application/json (UTF-8), not {content_type[:100]!r}")


class Call:
    """What a view gets: the caller, the parsed body and the request's clock reading."""

    def __init__(self, request, principal, now, consumed=()):
        self.request, self.principal, self.now = request, principal, now
        self.consumed = consumed  # query parameters the wrapper used (a token), not the view's

    @property
    def body(self):
        _check_json_media_type(self.request.headers.get("content-type"))
        raw = self.request.raw_body or b""
        if not raw.strip():
            raise ValidationError("body", "is required (a JSON object)")
        try:
            document = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ValidationError("body", "is not valid JSON") from None
        except RecursionError:  # the parser recurses once per level: thousands of "[" exhaust the stack
            raise ValidationError("body", f"is nested more than {MAX_DEPTH} levels deep") from None
        if _depth_exceeds(document, MAX_DEPTH):
            raise ValidationError("body", f"is nested more than {MAX_DEPTH} levels deep")
        check_document(document)  # control characters, lone surrogates: a 400 naming the JSON path
        return document

    @property
    def query(self):
        params = {k: v for k, v in (self.request.query_params or {}).items() if k not in self.consumed}
        check_document(params, "query")  # each parameter is one line, named by its name
        return params

    def header(self, name):
        return self.request.headers.get(name)

    @property
    def base_url(self):
        """The URL the API was called at, up to its routes ("https://abc.execute-api…/api"), or None when
        the request does not say. API Gateway gives its domain, and the request's path with the stage (or
        a custom domain's base path) before the route; elsewhere the Host header names the server."""
        context, headers = self.request.context, self.request.headers
        host = context.get("domainName") or headers.get("host") or ""
        scheme = headers.get("x-forwarded-proto") or ("https" if context.get("domainName") else "http")
        if not _HOST.fullmatch(host) or scheme not in ("http", "https"):
            return None
        path = context.get("path") or self.request.path
        prefix = path[:-len(self.request.path)] if path.endswith(self.request.path) else ""
        return f"{scheme}://{host}{prefix}"


class Api:
    """Wraps Chalice routes: `@api.route("/path", methods=["GET"], roles=("admin",))`."""

    def __init__(self, app):
        self.app = app

    def route(self, path, methods, roles=tokens.ROLES, public=False, token_in_query=False, max_body=MAX_BODY,
              **kwargs):
        """`token_in_query`: also accept the token as `?token=…`, for clients that cannot send headers
        (calendar subscriptions); the Authorization header still wins. `max_body`: the largest body
        the route takes, in bytes (batch routes take more than MAX_BODY)."""
        def decorate(view):
            @functools.wraps(view)
            def handler(**params):
                return self._handle(view, roles, public, token_in_query, params, max_body)

            # Chalice would refuse any Content-Type but JSON on every route, before the view, in its own
            # error shape: the API checks it itself where a body is read (Call.body).
            return self.app.route(path, methods=methods, content_types=["*/*"], **kwargs)(handler)

        return decorate

    def _handle(self, view, roles, public, token_in_query, params, max_body):
        request = self.app.current_request
        try:
            if len(request.raw_body or b"") > max_body:
                return error_response("RequestEntityTooLargeError", f"the body exceeds {max_body} bytes")
            principal, consumed, now = None, (), datetime.now(UTC)
            if not public:
                header = request.headers.get("authorization")
                if token_in_query:
                    consumed = ("token",)
                    query_token = (request.query_params or {}).get("token")
                    if header is None and query_token is not None:
                        header = f"Bearer {query_token}"
                principal = tokens.authenticate(header, now)
                if principal.role not in roles:
                    raise ForbiddenError(f"this needs a token with role {' or '.join(roles)}")
            result = view(Call(request, principal, now, consumed), **params)
        except ValidationError as exc:
            return error_response(exc.code, exc.message, exc.problems)
        except SlaError as exc:
            return error_response(exc.code, exc.message)
        except AWS_FAULTS as exc:
            log_event(logger, "AWS call failed", level=logging.ERROR, method=request.method,
                      path=request.context.get("resourcePath"), error=f"{type(exc).__name__}: {exc}",
                      code=aws_error_code(exc))
            return error_response("ServiceUnavailableError", "a storage or mail service is failing; retry shortly")
        if isinstance(result, Response):
            return result
        status, body = result if isinstance(result, tuple) else (200, result)
        return json_response(body, status) if body is not None else Response(body="", status_code=status)

