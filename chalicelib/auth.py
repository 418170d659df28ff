"""Tokens, roles and contract scoping (see docs/api.md).

A token reads `<token_id>.<secret>`; the tokens table stores only the secret's SHA-256, compared in
constant time. The bootstrap admin token is never stored in a table: it comes from the SSM Parameter
Store SecureString named by `SLA_ADMIN_TOKEN_PARAMETER` when that is set (prod; read with decryption
once per warm Lambda), else from the plain variable `SLA_ADMIN_TOKEN` (dev, tests, `make run`).
"""
import hashlib
import hmac
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib.errors import ForbiddenError, NotFoundError, UnauthorizedError
from chalicelib.logs import log_event
from chalicelib.tables import REGION, TokenModel

ROLES = ("admin", "agent", "client")
BOOTSTRAP_ID = "bootstrap-admin"
USE_STAMP_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per token
logger = logging.getLogger("sla_clock.auth")
_parameters = {}  # SSM parameter name -> its decrypted value, for the life of the process (warm Lambda)
_parameters_lock = threading.Lock()


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


def _parameter(name):
    """The decrypted value of SSM parameter `name`, fetched once per process. None (logged, not cached,
    so the next call tries again) when SSM cannot give it: the bootstrap admin is then refused, every
    stored token still works."""
    with _parameters_lock:
        if name in _parameters:
            return _parameters[name]
        client = boto3.client("ssm", region_name=REGION, endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
        try:
            value = client.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        except (ClientError, BotoCoreError) as exc:
            log_event(logger, "admin token parameter unavailable", level=logging.ERROR, parameter=name,
                      error=f"{type(exc).__name__}: {exc}")
            return None
        _parameters[name] = value
        return value


def bootstrap_token():
    """The bootstrap admin token: SSM parameter `SLA_ADMIN_TOKEN_PARAMETER` when set, else `SLA_ADMIN_TOKEN`."""
    name = os.environ.get("SLA_ADMIN_TOKEN_PARAMETER")
    if name:
        return _parameter(name)
    return os.environ.get("SLA_ADMIN_TOKEN")


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
    try:
        record = TokenModel.get(token_id, consistent_read=True)
    except DoesNotExist:
        raise UnauthorizedError("unknown or revoked token") from None
    if not hmac.compare_digest(_sha256(secret), record.secret_sha256):
        raise UnauthorizedError("unknown or revoked token")
    if record.expires_at is not None and record.expires_at <= now:
        raise UnauthorizedError("unknown or revoked token")
    _stamp_use(record, now)
    return Principal(record.token_id, record.role, record.contract_id)


def _stamp_use(record, now):
    """Record when the token was last used, at most once per USE_STAMP_EVERY: the condition makes
    concurrent calls write once, and a busy token costs one write a minute, not one per call. Best
    effort: a failed stamp never fails the call it belongs to."""
    if record.last_used_at is not None and now - record.last_used_at < USE_STAMP_EVERY:
        return
    stale = TokenModel.last_used_at.does_not_exist() | (TokenModel.last_used_at <= now - USE_STAMP_EVERY)
    try:
        record.update(actions=[TokenModel.last_used_at.set(now)], condition=stale)
    except UpdateError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            log_event(logger, "token use not recorded", level=logging.WARNING, token_id=record.token_id,
                      error=f"{type(exc).__name__}: {exc}")


def issue_token(role, contract_id, created_by, now, expires_at=None):
    """Store a new token's hash; return (record, token). The token itself is never stored."""
    token_id = "tok_" + secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    record = TokenModel(
        token_id,
        secret_sha256=_sha256(secret),
        role=role,
        contract_id=contract_id,
        created_at=now,
        created_by=created_by,
        expires_at=expires_at,
    )
    record.save(condition=TokenModel.token_id.does_not_exist())
    return record, f"{token_id}.{secret}"


def tokens_page(limit, start_key=None):
    """One page of stored tokens (a Scan of the small tokens table): (records, last key or None)."""
    result = TokenModel.scan(limit=limit, last_evaluated_key=start_key)
    records = list(result)
    return records, result.last_evaluated_key


def revoke_token(token_id):
    try:
        TokenModel.get(token_id).delete()
    except DoesNotExist:
        raise NotFoundError(f"no token {token_id!r}") from None
