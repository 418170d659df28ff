"""SSM Parameter Store: one client per process, and SecureString values decrypted once per process
(a warm Lambda). A call gives up after timeouts.SSM.worst seconds."""
import logging
import threading
import time

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import settings
from chalicelib.aws import timeouts
from chalicelib.logs import log_event

logger = logging.getLogger("sla_clock.ssm")
RETRY_AFTER = 30.0  # seconds SSM is not asked again for a parameter after it did not answer (this process)
_values = {}  # parameter name -> its decrypted value, or (a float) the monotonic time it may be asked for again
_lock = threading.Lock()
_client = None
_client_lock = threading.Lock()


def client():
    """The process's SSM client (botocore clients are thread-safe)."""
    global _client
    with _client_lock:
        if _client is None:
            current = settings.current()
            _client = boto3.client("ssm", region_name=current.region, endpoint_url=current.endpoint_url,
                                   config=timeouts.SSM.config())
        return _client


def decrypted_parameter(name):
    """The decrypted value of parameter `name`, fetched once per process. None (logged) when SSM cannot
    give it: the next call asks again, except after no answer at all (a timeout, no connection): then
    SSM is asked again only RETRY_AFTER seconds later, so while it hangs one call in that time waits
    for it, not every call (the bootstrap token is read on every authenticated call)."""
    with _lock:
        found = _values.get(name)
        if isinstance(found, str):
            return found
        if found is not None and time.monotonic() < found:
            return None
        try:
            value = client().get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, BotoCoreError):
                _values[name] = time.monotonic() + RETRY_AFTER
            log_event(logger, "parameter unavailable", level=logging.ERROR, parameter=name,
                      error=f"{type(exc).__name__}: {exc}")
            return None
        _values[name] = value
        return value
