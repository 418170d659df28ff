"""The OpenAPI description of the HTTP API (chalicelib/openapi.yaml; the repository root links to it),
served at GET /openapi.json. It lives in chalicelib/ because that is what the Lambda package carries."""
import functools
from pathlib import Path

import yaml

SPEC_PATH = Path(__file__).with_name("openapi.yaml")


@functools.cache
def document():
    """The spec as a JSON-ready dict, read and parsed once per process (a warm Lambda keeps it). The
    spec quotes anything YAML would read as a date, so every value is a JSON type."""
    return yaml.safe_load(SPEC_PATH.read_text("utf-8"))


def served(base_url):
    """The spec as served: its `servers` is the one the request came in on, so Swagger UI and other
    tools call the API where they read this (stage or base path included). When the request does not
    say, the file's relative "/" stands."""
    if base_url is None:
        return document()
    return {**document(), "servers": [{"url": base_url, "description": "The server this document came from"}]}
