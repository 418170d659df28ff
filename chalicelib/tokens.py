"""Tokens, roles and contract scoping (see docs/api.md).

A token reads `<token_id>.<secret>`; the tokens table stores only the secret's SHA-256, compared in
constant time. The bootstrap admin token is never stored in a table: it comes from the SSM Parameter
Store SecureString named by `SLA_ADMIN_TOKEN_PARAMETER` when that is set (prod; read with decryption
once per warm Lambda), else from the plain variable `SLA_ADMIN_TOKEN` (dev, tests, `make run`).
"""
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chalicelib import settings
from chalicelib.aws import parameters, store
from chalicelib.core.documents import token_document
from chalicelib.core.errors import ForbiddenError, NotFoundError, UnauthorizedError, ValidationError
from chalicelib.core.fields import (
    check_contract_id,
    instant,
    page_limit,
    page_start,
    reject_unknown,
    require_object,
)

ROLES = ("admin", "agent", "client")
BOOTSTRAP_ID = "bootstrap-admin"
USE_STAMP_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per token


@dataclass(frozen=True)
class Principal:
    token_id: str
    role: str
    contract_id: str | None  # None for admins: they see every contract

    @property
    def is_admin(self):
        return self.role == "admin"

    @property
    def is_client(self):
        """A client system: it sees its customers' business, never the provider's side (notifications,
        provider and admin addresses)."""
        return self.role == "client"

    def require_contract(self, contract_id):
        """Agents and clients touch their own contract only; the answer never says whether another exists."""
        if not self.is_admin and contract_id != self.contract_id:
            raise ForbiddenError(f"this token is scoped to contract {self.contract_id!r}")


def _sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _bearer(header):
    if not header:
        raise UnauthorizedError("missing Authorization: Bearer <token> header")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("the Authorization header must read: Bearer <token>")
    return token.strip()


def bootstrap_token():
    """The bootstrap admin token: SSM parameter `SLA_ADMIN_TOKEN_PARAMETER` when set, else `SLA_ADMIN_TOKEN`."""
    current = settings.current()
    name = current.admin_token_parameter
    if name:
        return parameters.decrypted_parameter(name)
    return current.admin_token


def authenticate(header, now=None):
    """The principal behind an Authorization header at `now` (default: the current time), or
    UnauthorizedError: unknown, revoked or expired tokens are refused alike."""
    now = now or datetime.now(UTC)
    token = _bearer(header)
    bootstrap = bootstrap_token()
    if bootstrap and hmac.compare_digest(_sha256(token), _sha256(bootstrap)):
        return Principal(BOOTSTRAP_ID, "admin", None)
    token_id, dot, secret = token.partition(".")
    if not dot or not token_id or not secret or len(token) > 200:
        raise UnauthorizedError("unknown or revoked token")
    record = store.token(token_id)
    if record is None:
        raise UnauthorizedError("unknown or revoked token")
    if not hmac.compare_digest(_sha256(secret), record.secret_sha256):
        raise UnauthorizedError("unknown or revoked token")
    if record.expires_at is not None and record.expires_at <= now:
        raise UnauthorizedError("unknown or revoked token")
    store.stamp_token_use(record, now, USE_STAMP_EVERY)
    return Principal(record.token_id, record.role, record.contract_id)


MAX_TOKEN_LIFETIME = timedelta(days=3653)  # ten years: a later expiry is a typo, not a plan


def issue_token(principal, body, now):
    body = require_object(body, "body")
    reject_unknown(body, ("role", "contract_id", "expires_at"))
    role = body.get("role")
    if role not in ROLES:
        raise ValidationError("role", f"must be one of {', '.join(ROLES)}")
    contract_id = body.get("contract_id")
    if role == "admin":
        if contract_id is not None:
            raise ValidationError("contract_id", "admin tokens are not scoped to a contract")
    else:
        if contract_id is None:
            raise ValidationError("contract_id", f"is required for {role} tokens")
        check_contract_id(contract_id)
        store.latest_record(contract_id)
    expires_at = body.get("expires_at")
    if expires_at is not None:
        expires_at = instant(expires_at, "expires_at")
        if expires_at <= now:
            raise ValidationError("expires_at", "must lie in the future")
        if expires_at > now + MAX_TOKEN_LIFETIME:
            raise ValidationError("expires_at", f"must lie within {MAX_TOKEN_LIFETIME.days} days")
    token_id, secret = "tok_" + secrets.token_hex(8), secrets.token_urlsafe(32)
    record = store.save_token(token_id, _sha256(secret), role, contract_id, principal.token_id, now, expires_at)
    return token_document(record, f"{token_id}.{secret}")


def list_tokens(params):
    """GET /tokens: the stored tokens, a page at a time; never a secret, nor its hash."""
    params = params or {}
    reject_unknown(params, ("limit", "next"))
    limit = page_limit(params)
    start = page_start(params, store.decode_key, store.TOKEN_KEY)
    found, last = store.tokens_page(limit, start)
    return {"items": [token_document(record) for record in found], "next": store.encode_cursor(last)}


def revoke_token(token_id):
    if not store.delete_token(token_id):
        raise NotFoundError(f"no token {token_id!r}")
