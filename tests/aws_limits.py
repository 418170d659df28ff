"""moto is not AWS: the limits AWS enforces and moto lets through (or gets wrong), enforced for every
AWS call the tests make, with the error AWS or botocore would raise.

Refused at botocore's boundary (`BaseClient._make_api_call`), before moto sees the request:
- SES v1 SendEmail, SendTemplatedEmail, SendBulkTemplatedEmail (per destination) and SendRawEmail with
  more than 50 recipients: a raw message counts its `Destinations` when given (SES then ignores the
  headers), else the addresses of its To, Cc and Bcc headers. `InvalidParameterValue`, "Recipient
  count exceeds 50.".
- SendRawEmail whose message is over 10 MB (10,485,760 bytes: the quota counts the message as sent,
  attachments base64-encoded inside it). `InvalidParameterValue`, "Message length is more than
  10485760 bytes long: '<length>'.".
- DynamoDB PutItem, BatchWriteItem (a PutRequest) and TransactWriteItems (a Put) writing an item over
  400 KB (409,600 bytes, as DynamoDB sizes it: UTF-8 names and strings, numbers by significant digits,
  raw binary length, 1 byte for a boolean or null, 3 bytes plus 1 per element for a list or map).
  `ValidationException`, "Item size has exceeded the maximum allowed size": DynamoDB refuses a put it
  can measure from the request before a transaction starts.
- A lone (unpaired) surrogate in any string of a JSON-protocol service's parameters (DynamoDB, SSM,
  Kinesis...): botocore escapes it as `\\udXXX` and sends it, and the text cannot be stored as sent;
  refused as `SerializationException`, DynamoDB's answer to a request it cannot read (its exact
  answer to this one is not documented). The query protocol (SES, SNS) needs nothing here: botocore
  itself raises UnicodeEncodeError while it signs the request, with moto as in production.

Enforced inside moto, because only the stored item tells:
- An UpdateItem whose finished item is over 400 KB: `ValidationException`, "Item size to update has
  exceeded the maximum allowed size", and the item stays as it was (moto applies an update action by
  action, so a failing one left the earlier ones applied, or a new key-only item). In a transaction
  it cancels the transaction with a `ValidationError` reason, as DynamoDB does.

And moto's own versions of these limits are switched off, as they refuse what AWS accepts: its 405,000
"bytes" item limit (sized its own way, checked attribute by attribute) and its SendRawEmail count of
the Destinations plus the header addresses (twice each recipient of a message that has both).

Nothing is kept between calls and no error quotes a value (only counts, sizes and field paths).
"""
import copy
import functools
import math
import threading
from email.parser import BytesHeaderParser
from email.utils import getaddresses

import moto.ses.models
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from moto.dynamodb.exceptions import ItemSizeToUpdateTooLarge
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import LimitedSizeDict

ITEM_LIMIT = 400 * 1024
RECIPIENT_LIMIT = 50
RAW_MESSAGE_LIMIT = 10 * 1024 * 1024

ITEM_TOO_LARGE = "Item size has exceeded the maximum allowed size"
UPDATE_TOO_LARGE = "Item size to update has exceeded the maximum allowed size"
TOO_MANY_RECIPIENTS = f"Recipient count exceeds {RECIPIENT_LIMIT}."

# Protocols whose serializer escapes a lone surrogate instead of failing on it (json.dumps).
_ESCAPING_PROTOCOLS = {"json", "rest-json"}


def item_size(item, encoded_binary=False):
    """An item's size as DynamoDB counts it against its 400 KB limit. `item`: {name: AttributeValue}
    as botocore takes it ({"S": "..."}), or moto's stored attributes (DynamoType), whose binary values
    are base64 text (`encoded_binary`)."""
    return sum(_utf8_size(name) + _value_size(value, encoded_binary) for name, value in item.items())


def _value_size(value, encoded_binary):
    kind, data = next(iter(value.items())) if isinstance(value, dict) else (value.type, value.value)
    if kind == "S":
        return _utf8_size(data)
    if kind == "N":
        return _number_size(data)
    if kind == "B":
        return _binary_size(data, encoded_binary)
    if kind == "SS":
        return sum(map(_utf8_size, data))
    if kind == "NS":
        return sum(map(_number_size, data))
    if kind == "BS":
        return sum(_binary_size(element, encoded_binary) for element in data)
    if kind == "L":
        return 3 + sum(1 + _value_size(element, encoded_binary) for element in data)
    if kind == "M":
        return 3 + sum(1 + _utf8_size(name) + _value_size(element, encoded_binary)
                       for name, element in data.items())
    return 1  # BOOL, NULL


def _utf8_size(text):
    # Lone surrogates are refused on their own; here they count as the 3 bytes they would take.
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _number_size(literal):
    """1 byte plus 1 per two significant digits (leading and trailing zeros trimmed)."""
    significant = literal.lower().split("e")[0].lstrip("+-").replace(".", "").strip("0")
    return 1 + (len(significant) + 1) // 2


def _binary_size(data, encoded):
    if encoded and isinstance(data, str):
        return len(data.rstrip("=")) * 3 // 4
    return len(data) if isinstance(data, bytes | bytearray) else _utf8_size(data)


def lone_surrogate_at(value):
    """Where the first string in `value` (parameters: dicts, lists, strings...) holding a lone surrogate
    is ("Item.subject.S"), or None. A surrogate pair is fine: json.dumps escapes it as a pair, which
    decodes to the character it encodes. The path is built only for a string found."""
    found = _lone_surrogate_steps(value)
    return None if found is None else "".join(reversed(found)).lstrip(".")


def _lone_surrogate_steps(value):
    if isinstance(value, str):
        return [] if _unpaired(value) else None
    if isinstance(value, dict):
        for name, element in value.items():
            if isinstance(name, str) and _unpaired(name):
                return [" (a name)"]
            found = _lone_surrogate_steps(element)
            if found is not None:
                return [*found, f".{name}"]
    elif isinstance(value, list | tuple):
        for index, element in enumerate(value):
            found = _lone_surrogate_steps(element)
            if found is not None:
                return [*found, f"[{index}]"]
    return None


def _unpaired(text):
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        pass
    try:
        text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
        return False
    except UnicodeDecodeError:
        return True


def _error(operation, code, message, sender_type=False):
    """The ClientError botocore raises for an AWS error answer (HTTP 400)."""
    error = {"Code": code, "Message": message, **({"Type": "Sender"} if sender_type else {})}
    return ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400, "RetryAttempts": 0}},
                       operation)


def _destination_count(destination):
    return sum(len(destination.get(field) or ()) for field in ("ToAddresses", "CcAddresses", "BccAddresses"))


def _raw_message_refusal(params):
    raw = params.get("RawMessage", {}).get("Data", b"")
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if not isinstance(raw, bytes | bytearray):
        return None  # a file object: botocore reads it only when it sends the request
    if len(raw) > RAW_MESSAGE_LIMIT:
        return f"Message length is more than {RAW_MESSAGE_LIMIT} bytes long: '{len(raw)}'."
    if params.get("Destinations"):
        count = len(params["Destinations"])
    else:
        headers = BytesHeaderParser().parsebytes(bytes(raw))
        fields = [str(value) for name in ("To", "Cc", "Bcc") for value in headers.get_all(name, [])]
        count = sum(1 for _, address in getaddresses(fields) if address)
    return TOO_MANY_RECIPIENTS if count > RECIPIENT_LIMIT else None


def _destination_refusal(params):
    return TOO_MANY_RECIPIENTS if _destination_count(params.get("Destination") or {}) > RECIPIENT_LIMIT else None


def _bulk_refusal(params):
    counts = (_destination_count(entry.get("Destination") or {}) for entry in params.get("Destinations") or ())
    return TOO_MANY_RECIPIENTS if any(count > RECIPIENT_LIMIT for count in counts) else None


def _put_items(operation, params):
    """The items a DynamoDB write puts whole, as given."""
    if operation == "PutItem":
        return [params.get("Item") or {}]
    if operation == "BatchWriteItem":
        return [request["PutRequest"].get("Item") or {}
                for requests in (params.get("RequestItems") or {}).values() for request in requests
                if "PutRequest" in request]
    return [action["Put"].get("Item") or {} for action in params.get("TransactItems") or () if "Put" in action]


_SES_CHECKS = {"SendRawEmail": _raw_message_refusal, "SendEmail": _destination_refusal,
               "SendTemplatedEmail": _destination_refusal, "SendBulkTemplatedEmail": _bulk_refusal}
_DYNAMODB_PUTS = {"PutItem", "BatchWriteItem", "TransactWriteItems"}


def refusal(service, protocol, operation, params):
    """The ClientError AWS would answer these parameters with, or None when it would take them."""
    if protocol in _ESCAPING_PROTOCOLS:
        path = lone_surrogate_at(params)
        if path is not None:
            return _error(operation, "SerializationException", f"Invalid UTF-8 (a lone surrogate) at {path}")
    if service == "ses" and operation in _SES_CHECKS:
        message = _SES_CHECKS[operation](params)
        return _error(operation, "InvalidParameterValue", message, sender_type=True) if message else None
    if service == "dynamodb" and operation in _DYNAMODB_PUTS:
        if any(item_size(item) > ITEM_LIMIT for item in _put_items(operation, params)):
            return _error(operation, "ValidationException", ITEM_TOO_LARGE)
    return None


def _refusing(make_api_call):
    @functools.wraps(make_api_call)
    def checked(self, operation_name, api_params):
        model = self.meta.service_model
        try:
            refused = refusal(model.service_name, model.protocol, operation_name, api_params)
        except (AttributeError, KeyError, TypeError, StopIteration):
            refused = None  # malformed parameters: botocore's validation answers them
        if refused is not None:
            raise refused
        return make_api_call(self, operation_name, api_params)

    checked.refuses_what_aws_refuses = True
    return checked


class ValidationError(Exception):
    """Raised inside moto's TransactWriteItems, which cancels the transaction with a reason named
    after the exception's class: DynamoDB's reason for an update it cannot store."""


_transaction = threading.local()


def _within_transaction(transact_write_items):
    @functools.wraps(transact_write_items)
    def marked(self, *args, **kwargs):
        _transaction.open = True
        try:
            return transact_write_items(self, *args, **kwargs)
        finally:
            _transaction.open = False

    return marked


def _whole_or_not_at_all(update_item):
    """moto's UpdateItem applies the update to the stored item action by action and checks no size:
    refuse a finished item over the limit, and put back the item as it was whenever the update fails
    (whatever the reason), as DynamoDB's atomic update leaves it."""

    @functools.wraps(update_item)
    def atomic(self, table_name, key, *args, **kwargs):
        try:
            before = self.get_item(table_name, key)
        except Exception:  # no such table, or a malformed key: moto's update answers it
            return update_item(self, table_name, key, *args, **kwargs)
        kept = None if before is None else copy.deepcopy(before)
        try:
            item = update_item(self, table_name, key, *args, **kwargs)
            if item_size(item.attrs, encoded_binary=True) > ITEM_LIMIT:
                raise (ValidationError(UPDATE_TOO_LARGE) if getattr(_transaction, "open", False)
                       else ItemSizeToUpdateTooLarge())
            return item
        except BaseException:
            if before is not None:
                before.attrs = kept.attrs
            elif self.get_item(table_name, key) is not None:
                self.delete_item(table_name, key)
            raise

    return atomic


def install():
    """Enforce the limits above for every AWS call of the process. Idempotent. Call it before wrapping
    moto's backend methods in a lock, so that the update's size check and rollback run inside it."""
    if getattr(BaseClient._make_api_call, "refuses_what_aws_refuses", False):
        return
    BaseClient._make_api_call = _refusing(BaseClient._make_api_call)
    # The checks above replace moto's own: a plain dict also spares its O(n) size sum per attribute set.
    LimitedSizeDict.__setitem__ = dict.__setitem__
    moto.ses.models.RECIPIENT_LIMIT = math.inf
    DynamoDBBackend.update_item = _whole_or_not_at_all(DynamoDBBackend.update_item)
    DynamoDBBackend.transact_write_items = _within_transaction(DynamoDBBackend.transact_write_items)
