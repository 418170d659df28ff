"""PynamoDB models: the only description of the DynamoDB tables, and `create_all()`.

Meta is evaluated at import, so every setting read here from the environment has a default:
`SLA_TABLE_PREFIX` (default "sla-"), `AWS_DEFAULT_REGION` (default "us-east-1"), optional
`AWS_ENDPOINT_URL` (a moto server when running locally).
"""
import os

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

PREFIX = os.environ.get("SLA_TABLE_PREFIX", "sla-")
REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
HOST = os.environ.get("AWS_ENDPOINT_URL") or None


class _Meta:
    region = REGION
    host = HOST
    billing_mode = "PAY_PER_REQUEST"


class ContractModel(Model):
    """One item per contract version: history is kept so a resolved request keeps its terms."""

    class Meta(_Meta):
        table_name = f"{PREFIX}contracts"

    contract_id = UnicodeAttribute(hash_key=True)
    version = NumberAttribute(range_key=True)
    document = JSONAttribute()  # the normalized contract document
    updated_at = UTCDateTimeAttribute()
    updated_by = UnicodeAttribute()


class RequestsByContract(GlobalSecondaryIndex):
    """Listing a contract's requests, newest first (`listed_at` = received instant + request id)."""

    class Meta:
        index_name = "by_contract"
        projection = AllProjection()  # listing evaluates each request, which needs its timeline

    contract_id = UnicodeAttribute(hash_key=True)
    listed_at = UnicodeAttribute(range_key=True)


class RequestModel(Model):
    """A customer request: its facts, the clock-relevant timeline, and cached derived fields.

    Full events (with notes and authors) live in EventModel; `timeline` keeps the compact copy the
    clock needs, so evaluating a request costs one read whatever its notes weigh.
    """

    class Meta(_Meta):
        table_name = f"{PREFIX}requests"

    request_id = UnicodeAttribute(hash_key=True)
    contract_id = UnicodeAttribute()
    listed_at = UnicodeAttribute()
    priority = UnicodeAttribute()  # as created; reprioritize events change the current one
    channel = UnicodeAttribute()
    designated = BooleanAttribute()  # channel was designated at receipt: the clock started then
    subject = UnicodeAttribute()
    description = UnicodeAttribute(null=True)
    requester = JSONAttribute()
    received_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()
    timeline = JSONAttribute()  # [{"seq","type","at", optional "priority","score","channel"}]
    version = VersionAttribute()
    # Derived from the timeline by the pure clock; cached for listing filters and the scanner.
    status = UnicodeAttribute()
    current_priority = UnicodeAttribute()
    contract_version = NumberAttribute()
    breached = BooleanAttribute(default=False)
    next_check_at = NumberAttribute(null=True)  # epoch seconds

    by_contract = RequestsByContract()


class EventModel(Model):
    """The append-only event record of a request (seq 1 is "received")."""

    class Meta(_Meta):
        table_name = f"{PREFIX}events"

    request_id = UnicodeAttribute(hash_key=True)
    seq = NumberAttribute(range_key=True)
    type = UnicodeAttribute()
    at = UTCDateTimeAttribute()
    by = UnicodeAttribute()
    note = UnicodeAttribute(null=True)
    details = JSONAttribute(null=True)  # priority / score / channel for the events that carry one


class TokenModel(Model):
    """API tokens: the token is `<token_id>.<secret>`; only the secret's SHA-256 is stored."""

    class Meta(_Meta):
        table_name = f"{PREFIX}tokens"

    token_id = UnicodeAttribute(hash_key=True)
    secret_sha256 = UnicodeAttribute()
    role = UnicodeAttribute()
    contract_id = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()


class IdempotencyModel(Model):
    """First answer to an `Idempotency-Key`, per token, kept 24 h."""

    class Meta(_Meta):
        table_name = f"{PREFIX}idempotency"

    key = UnicodeAttribute(hash_key=True)  # sha256(token_id + key)
    fingerprint = UnicodeAttribute()  # sha256 of the request body
    status = UnicodeAttribute()  # "in_progress" or "done"
    response_status = NumberAttribute(null=True)
    response_body = JSONAttribute(null=True)
    expires_at = TTLAttribute()


MODELS = (ContractModel, RequestModel, EventModel, TokenModel, IdempotencyModel)


def create_all():
    """Create every table (idempotent) in the current account: tests and the local run."""
    for model in MODELS:
        if not model.exists():
            model.create_table(wait=True)
