"""SSM Parameter Store: one client per process, and SecureString values decrypted once per process
(a warm Lambda)."""
import logging
import threading

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import settings
from chalicelib.logs import log_event

logger = logging.getLogger("sla_clock.ssm")
_values = {}  # parameter name -> its decrypted value
_lock = threading.Lock()
_client = None
_client_lock = threading.Lock()


def client():
    """The process's SSM client (botocore clients are thread-safe)."""
    global _client
    with _client_lock:
        if _client is None:
            current = settings.current()
            _client = boto3.client("ssm", region_name=current.region, endpoint_url=current.endpoint_url)
        return _client


def decrypted_parameter(name):
    """The decrypted value of parameter `name`, fetched once per process. None (logged, not cached,
    so the next call tries again) when SSM cannot give it."""
    with _lock:
        if name in _values:
            return _values[name]
        try:
            value = client().get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        except (ClientError, BotoCoreError) as exc:
            log_event(logger, "parameter unavailable", level=logging.ERROR, parameter=name,
                      error=f"{type(exc).__name__}: {exc}")
            return None
        _values[name] = value
        return value
