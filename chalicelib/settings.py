"""Configuration, read from the environment when it is used, never at import.

One place names every variable the service reads and its default. `current()` reads them afresh on
each call (a dozen dictionary look-ups): a Lambda's environment is fixed for its life, and tests and
`make run` can set variables before the first call that needs them instead of before any import.

The one deliberate exception is in `app.py`: the SNS topic of the SES events handler is part of a
Chalice decorator, so it is resolved when the stage is packaged.
"""
import os
from dataclasses import dataclass, fields

DEFAULT_SENDER = "sla-clock@localhost.localdomain"


@dataclass(frozen=True)
class Settings:
    table_prefix: str = "sla-"  # SLA_TABLE_PREFIX: every table's name starts with it
    region: str = "us-east-1"  # AWS_DEFAULT_REGION
    endpoint_url: str | None = None  # AWS_ENDPOINT_URL: a moto server when running locally
    stage: str = "local"  # SLA_STAGE: the metrics' Stage dimension
    log_level: str = "INFO"  # SLA_LOG_LEVEL
    default_sender: str = DEFAULT_SENDER  # SLA_DEFAULT_SENDER: when a contract names no sender
    ses_configuration_set: str | None = None  # SLA_SES_CONFIGURATION_SET: SES events are published through it
    ses_max_send_rate: str | None = None  # SLA_SES_MAX_SEND_RATE: emails/s; unset → GetSendQuota
    eml_dir: str | None = None  # SLA_EML_DIR: keep a copy of every email SES accepted (make run)
    admin_token: str | None = None  # SLA_ADMIN_TOKEN: the bootstrap admin token (dev, tests, make run)
    admin_token_parameter: str | None = None  # SLA_ADMIN_TOKEN_PARAMETER: its SSM SecureString (prod)
    allow_local_webhooks: str | None = None  # SLA_ALLOW_LOCAL_WEBHOOKS: "1" also allows http to loopback
    scan_shards: str | None = None  # SLA_SCAN_SHARDS: scan invocations a minute, each a share of the work; 1

    @property
    def local_webhooks_allowed(self):
        return self.allow_local_webhooks == "1"


VARIABLES = {
    "table_prefix": "SLA_TABLE_PREFIX",
    "region": "AWS_DEFAULT_REGION",
    "endpoint_url": "AWS_ENDPOINT_URL",
    "stage": "SLA_STAGE",
    "log_level": "SLA_LOG_LEVEL",
    "default_sender": "SLA_DEFAULT_SENDER",
    "ses_configuration_set": "SLA_SES_CONFIGURATION_SET",
    "ses_max_send_rate": "SLA_SES_MAX_SEND_RATE",
    "eml_dir": "SLA_EML_DIR",
    "admin_token": "SLA_ADMIN_TOKEN",
    "admin_token_parameter": "SLA_ADMIN_TOKEN_PARAMETER",
    "allow_local_webhooks": "SLA_ALLOW_LOCAL_WEBHOOKS",
    "scan_shards": "SLA_SCAN_SHARDS",
}


def value(name, environ=None):
    """One setting (a field of Settings), reading its variable alone: for what runs on every AWS call,
    where reading all of them would cost more than the call's own work."""
    environ = os.environ if environ is None else environ
    return environ.get(VARIABLES[name], "").strip() or getattr(Settings, name)


def current(environ=None):
    """The settings in `environ` (default: the process environment). An empty variable counts as unset."""
    environ = os.environ if environ is None else environ
    values = {}
    for field in fields(Settings):
        value = environ.get(VARIABLES[field.name], "").strip()
        if value:
            values[field.name] = value
    return Settings(**values)
