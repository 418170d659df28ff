"""Invoking a Lambda function of this stage: the minute's scan hands shard groups to copies of itself."""
import json

import boto3

from chalicelib import settings
from chalicelib.aws import timeouts

_lambda = None


def _client():
    """One Lambda client per process; a call gives up after timeouts.LAMBDA.worst seconds."""
    global _lambda
    if _lambda is None:
        current = settings.current()
        _lambda = boto3.client("lambda", region_name=current.region, endpoint_url=current.endpoint_url,
                               config=timeouts.LAMBDA.config())
    return _lambda


def invoke_async(function_name, payload):
    """Queue one invocation of `function_name` with `payload` (a JSON-able dict) and return at once:
    Lambda answers as soon as the event is queued, and runs it (retrying twice if it fails) on its own."""
    _client().invoke(FunctionName=function_name, InvocationType="Event",
                     Payload=json.dumps(payload).encode("utf-8"))
