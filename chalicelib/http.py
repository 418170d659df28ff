"""The one place where HTTP meets the core: body limits, JSON parsing, authentication, roles and
error rendering. Every route goes through `Api.route`, so no route handles any of it on its own.
"""
import functools
import json
from datetime import UTC, datetime

from chalice import Response

from chalicelib import auth
from chalicelib.errors import ForbiddenError, SlaError, ValidationError

MAX_BODY = 64 * 1024
STATUS = {
    "BadRequestError": 400,
    "UnauthorizedError": 401,
    "ForbiddenError": 403,
    "NotFoundError": 404,
    "ConflictError": 409,
    "RequestEntityTooLargeError": 413,
}


def json_response(body, status=200):
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json"})


def error_response(code, message):
    return json_response({"Code": code, "Message": message}, STATUS.get(code, 500))


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
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ValidationError("body", "is not valid JSON") from None

    @property
    def query(self):
        return {k: v for k, v in (self.request.query_params or {}).items() if k not in self.consumed}

    def header(self, name):
        return self.request.headers.get(name)


class Api:
    """Wraps Chalice routes: `@api.route("/path", methods=["GET"], roles=("admin",))`."""

    def __init__(self, app):
        self.app = app

    def route(self, path, methods, roles=auth.ROLES, public=False, token_in_query=False, **kwargs):
        """`token_in_query`: also accept the token as `?token=…`, for clients that cannot send headers
        (calendar subscriptions); the Authorization header still wins."""
        def decorate(view):
            @functools.wraps(view)
            def handler(**params):
                return self._handle(view, roles, public, token_in_query, params)

            return self.app.route(path, methods=methods, **kwargs)(handler)

        return decorate

    def _handle(self, view, roles, public, token_in_query, params):
        request = self.app.current_request
        try:
            if len(request.raw_body or b"") > MAX_BODY:
                return error_response("RequestEntityTooLargeError", f"the body exceeds {MAX_BODY} bytes")
            principal, consumed = None, ()
            if not public:
                header = request.headers.get("authorization")
                if token_in_query:
                    consumed = ("token",)
                    query_token = (request.query_params or {}).get("token")
                    if header is None and query_token is not None:
                        header = f"Bearer {query_token}"
                principal = auth.authenticate(header)
                if principal.role not in roles:
                    raise ForbiddenError(f"this needs a token with role {' or '.join(roles)}")
            result = view(Call(request, principal, datetime.now(UTC), consumed), **params)
        except SlaError as exc:
            return error_response(exc.code, exc.message)
        if isinstance(result, Response):
            return result
        status, body = result if isinstance(result, tuple) else (200, result)
        return json_response(body, status) if body is not None else Response(body="", status_code=status)

