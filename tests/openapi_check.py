"""Checks an HTTP response against the OpenAPI document: the status is documented for the operation,
the content type is one it documents, and a JSON body matches the schema (formats included, so a
timestamp without an offset or a field of another type fails).

One JSON Schema validator per schema location, built the first time a response needs it and kept for
the session: a check costs one dictionary look-up and one validation."""
import json
import re

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from chalicelib import openapi

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
SPEC_URI = "urn:sla-clock:openapi"


def json_pointer_token(token):
    """`token` as one reference token of a JSON pointer (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


class Spec:
    def __init__(self, document):
        self.document = document
        self.registry = Registry().with_resource(SPEC_URI, Resource.from_contents(document, DRAFT202012))
        self.operations = []  # (method, path regex, path template)
        for path, item in document["paths"].items():
            pattern = re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(path)) + "$")
            for method in item:
                if method in METHODS:
                    self.operations.append((method, pattern, path))
        self._validators = {}

    def operation(self, method, path):
        """The path template of the operation that serves `method` `path`, or None."""
        for candidate, pattern, template in self.operations:
            if candidate == method.lower() and pattern.match(path):
                return template
        return None

    def _pointer(self, *tokens):
        return "/" + "/".join(json_pointer_token(str(token)) for token in tokens)

    def _response(self, template, method, status):
        """(JSON pointer of the response object, the object), following a $ref to components."""
        responses = self.document["paths"][template][method]["responses"]
        key = str(status) if str(status) in responses else None
        if key is None:
            return None, None
        pointer = self._pointer("paths", template, method, "responses", key)
        response = responses[key]
        if "$ref" in response:
            pointer = response["$ref"][1:]
            response = self.registry.resolver(SPEC_URI).lookup(f"{SPEC_URI}#{pointer}").contents
        return pointer, response

    def _validator(self, pointer):
        if pointer not in self._validators:
            self._validators[pointer] = Draft202012Validator(
                {"$ref": f"{SPEC_URI}#{pointer}"}, registry=self.registry,
                format_checker=Draft202012Validator.FORMAT_CHECKER)
        return self._validators[pointer]

    def problems(self, method, path, status, headers, body):
        """What is off-spec about one response (an empty list when nothing is)."""
        path = path.split("?", 1)[0]
        template = self.operation(method, path)
        if template is None:
            return [f"{method} {path} is not an operation of the spec"]
        pointer, response = self._response(template, method.lower(), status)
        where = f"{method} {template} -> {status}"
        if response is None:
            return [f"{where}: status not documented for the operation"]
        content = response.get("content") or {}
        text = body.decode("utf-8") if isinstance(body, bytes) else (body or "")
        if not content:
            return [f"{where}: documented without a body, answered {text[:200]!r}"] if text else []
        media = (headers.get("Content-Type") or headers.get("content-type") or "").split(";")[0].strip()
        if media not in content:
            return [f"{where}: content type {media!r}, documented {sorted(content)}"]
        if media != "application/json":
            return []
        try:
            document = json.loads(text)
        except ValueError:
            return [f"{where}: the body is not JSON: {text[:200]!r}"]
        schema_pointer = f"{pointer}/content/{json_pointer_token(media)}/schema"
        return [f"{where}: {'/'.join(map(str, error.absolute_path)) or '(body)'}: {error.message}"
                for error in self._validator(schema_pointer).iter_errors(document)]


    def request_problems(self, method, path, document):
        """What is off-spec about a JSON request body sent to `method` `path` (for the documents'
        examples; the service checks bodies itself, more strictly)."""
        template = self.operation(method, path)
        if template is None:
            return [f"{method} {path} is not an operation of the spec"]
        if "requestBody" not in self.document["paths"][template][method.lower()]:
            return [f"{method} {template} takes no body"]
        pointer = self._pointer("paths", template, method.lower(), "requestBody", "content", "application/json",
                                "schema")
        return [f"{method} {template} body: {'/'.join(map(str, error.absolute_path)) or '(body)'}: {error.message}"
                for error in self._validator(pointer).iter_errors(document)]


SPEC = Spec(openapi.document())
