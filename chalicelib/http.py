"""The one place where HTTP meets the core: body limits, JSON parsing, authentication, roles and
error rendering. Every route goes through `Api.route`, so no route handles any of it on its own.
"""
import functools
import json
import logging
from datetime import UTC, datetime

from chalice import Response

from chalicelib import tokens
from chalicelib.aws import AWS_FAULTS, aws_error_code
from chalicelib.core.errors import ForbiddenError, SlaError, ValidationError
from chalicelib.core.fields import check_document
from chalicelib.logs import log_event

MAX_BODY = 64 * 1024
MAX_DEPTH = 32  # arrays and objects inside each other; the deepest document the API takes has 5
STATUS = {
    "BadRequestError": 400,
    "UnauthorizedError": 401,
    "ForbiddenError": 403,
    "NotFoundError": 404,
    "ConflictError": 409,
    "RequestEntityTooLargeError": 413,
    "ServiceUnavailable": 503,
}
logger = logging.getLogger("sla_clock.http")


def json_response(body, status=200):
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json"})


def error_response(code, message):
    return json_response({"Code": code, "Message": message}, STATUS.get(code, 500))


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


class Call:
    """What a view gets: the caller, the parsed body and the request's clock reading."""

    def __init__(self, request, principal, now, consumed=()):
        self.request, self.principal, self.now = request, principal, now
        self.consumed = consumed  # query parameters the wrapper used (a token), not the view's

    @property
    def body(self):
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

            return self.app.route(path, methods=methods, **kwargs)(handler)

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
        except SlaError as exc:
            return error_response(exc.code, exc.message)
        except AWS_FAULTS as exc:
            log_event(logger, "AWS call failed", level=logging.ERROR, method=request.method,
                      path=request.context.get("resourcePath"), error=f"{type(exc).__name__}: {exc}",
                      code=aws_error_code(exc))
            return error_response("ServiceUnavailable", "a storage or mail service is failing; retry shortly")
        if isinstance(result, Response):
            return result
        status, body = result if isinstance(result, tuple) else (200, result)
        return json_response(body, status) if body is not None else Response(body="", status_code=status)

