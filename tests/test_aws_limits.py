"""The suite's stand-in for AWS refuses what AWS refuses (tests/aws_limits.py): each limit lets through
a request at the limit and refuses one just over it, with the error AWS or botocore would raise."""
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.message import EmailMessage

import aws_limits
import boto3
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError, ParamValidationError
from pynamodb.exceptions import PutError

from chalicelib.aws.tables import IdempotencyModel
from conftest import SENDER

TABLE = "limits"
KEY = {"pk": {"S": "k"}}


@pytest.fixture
def dynamodb(aws):
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    return client


@pytest.fixture
def ses(aws):
    return boto3.client("ses", region_name="us-east-1")


def sized(size, key="k", pad="p"):
    """An item of exactly `size` bytes as DynamoDB counts them: its key and one padding string."""
    item = {"pk": {"S": key}}
    item[pad] = {"S": "x" * (size - aws_limits.item_size(item) - len(pad))}
    assert aws_limits.item_size(item) == size
    return item


def stored(dynamodb, key=KEY):
    return dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True).get("Item")


def refused(call, code, message):
    with pytest.raises(ClientError) as caught:
        call()
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["Error"]["Message"] == message
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return caught.value


def addresses(count, start=0):
    return [f"person{n}@customer.example" for n in range(start, start + count)]


def raw_message(to=(), cc=(), bcc=(), body="Hello"):
    message = EmailMessage()
    message["From"], message["Subject"] = SENDER, "Breach"
    for header, recipients in (("To", to), ("Cc", cc), ("Bcc", bcc)):
        if recipients:
            message[header] = ", ".join(recipients)
    message.set_content(body)
    return message.as_bytes()


def test_the_checks_wrap_every_botocore_call_of_the_session():
    assert BaseClient._make_api_call.refuses_what_aws_refuses


# SES: 50 recipients a message, 10 MB a raw message.

def test_a_raw_message_to_50_destinations_named_in_its_to_header_is_sent_and_51_are_refused(ses, mailbox):
    fifty = addresses(50)
    ses.send_raw_email(Source=SENDER, Destinations=fifty, RawMessage={"Data": raw_message(to=fifty)})
    assert len(mailbox.messages()) == 1
    fifty_one = addresses(51)
    refused(lambda: ses.send_raw_email(Source=SENDER, Destinations=fifty_one,
                                       RawMessage={"Data": raw_message(to=fifty_one)}),
            "InvalidParameterValue", "Recipient count exceeds 50.")
    assert len(mailbox.messages()) == 1


def test_without_destinations_the_to_cc_and_bcc_headers_count_together(ses, mailbox):
    ses.send_raw_email(Source=SENDER, RawMessage={"Data": raw_message(
        to=addresses(20), cc=addresses(20, 20), bcc=addresses(10, 40))})
    refused(lambda: ses.send_raw_email(Source=SENDER, RawMessage={"Data": raw_message(
        to=addresses(20), cc=addresses(20, 20), bcc=addresses(11, 40))}),
            "InvalidParameterValue", "Recipient count exceeds 50.")
    assert len(mailbox.messages()) == 1


def test_given_destinations_the_headers_are_not_counted(ses, mailbox):
    ses.send_raw_email(Source=SENDER, Destinations=addresses(1), RawMessage={"Data": raw_message(to=addresses(60))})
    assert len(mailbox.messages()) == 1


def test_send_email_counts_to_cc_and_bcc_of_its_destination(ses):
    def send(bcc):
        return ses.send_email(Source=SENDER, Message={"Subject": {"Data": "Breach"}, "Body": {"Text": {"Data": "x"}}},
                              Destination={"ToAddresses": addresses(25), "CcAddresses": addresses(20, 25),
                                           "BccAddresses": addresses(bcc, 45)})

    send(5)
    refused(lambda: send(6), "InvalidParameterValue", "Recipient count exceeds 50.")


def test_a_raw_message_of_10_mib_is_sent_and_one_byte_more_is_refused(ses, mailbox):
    head = raw_message(to=addresses(1), body="")
    line = b"A" * 998 + b"\r\n"  # SMTP's longest line
    body = line * ((aws_limits.RAW_MESSAGE_LIMIT - len(head)) // len(line))
    at_limit = head + body + b"B" * (aws_limits.RAW_MESSAGE_LIMIT - len(head) - len(body))
    assert len(at_limit) == aws_limits.RAW_MESSAGE_LIMIT
    ses.send_raw_email(Source=SENDER, Destinations=addresses(1), RawMessage={"Data": at_limit})
    refused(lambda: ses.send_raw_email(Source=SENDER, Destinations=addresses(1), RawMessage={"Data": at_limit + b"B"}),
            "InvalidParameterValue", "Message length is more than 10485760 bytes long: '10485761'.")
    assert len(mailbox.messages()) == 1


def test_a_lone_surrogate_in_an_ses_subject_fails_in_botocore_before_anything_is_sent(ses, mailbox):
    with pytest.raises(UnicodeEncodeError):
        ses.send_email(Source=SENDER, Destination={"ToAddresses": addresses(1)},
                       Message={"Subject": {"Data": "Breach \ud800"}, "Body": {"Text": {"Data": "x"}}})
    assert mailbox.messages() == []


# DynamoDB: 400 KB an item, as DynamoDB sizes it.

@pytest.mark.parametrize(("value", "size"), [
    ({"S": "añ"}, 3), ({"S": ""}, 0), ({"N": "0"}, 1), ({"N": "12"}, 2), ({"N": "123"}, 3), ({"N": "-0012.500"}, 3),
    ({"N": "1E+5"}, 2), ({"B": b"\x00\x01\x02"}, 3), ({"BOOL": True}, 1), ({"NULL": True}, 1),
    ({"SS": ["a", "bc"]}, 3), ({"NS": ["1", "100"]}, 4), ({"BS": [b"ab", b"c"]}, 3),
    ({"L": []}, 3), ({"L": [{"S": "ab"}, {"N": "1"}]}, 3 + (1 + 2) + (1 + 2)),
    ({"M": {"k": {"S": "ab"}}}, 3 + 1 + 1 + 2), ({"M": {"k": {"L": [{"BOOL": False}]}}}, 3 + 1 + 1 + (3 + 1 + 1)),
])
def test_an_attribute_counts_its_name_and_value_as_dynamodb_documents(value, size):
    assert aws_limits.item_size({"név": value}) == len("név".encode()) + size


def test_an_item_of_400_kib_is_stored_and_one_byte_more_is_refused(dynamodb):
    dynamodb.put_item(TableName=TABLE, Item=sized(aws_limits.ITEM_LIMIT))
    assert stored(dynamodb) == sized(aws_limits.ITEM_LIMIT)
    refused(lambda: dynamodb.put_item(TableName=TABLE, Item=sized(aws_limits.ITEM_LIMIT + 1)),
            "ValidationException", aws_limits.ITEM_TOO_LARGE)
    assert stored(dynamodb) == sized(aws_limits.ITEM_LIMIT)


def test_a_batch_or_a_transaction_putting_an_item_over_400_kib_is_refused_whole(dynamodb):
    small, big = sized(100, key="small"), sized(aws_limits.ITEM_LIMIT + 1, key="big")
    refused(lambda: dynamodb.batch_write_item(RequestItems={TABLE: [{"PutRequest": {"Item": small}},
                                                                    {"PutRequest": {"Item": big}}]}),
            "ValidationException", aws_limits.ITEM_TOO_LARGE)
    refused(lambda: dynamodb.transact_write_items(TransactItems=[{"Put": {"TableName": TABLE, "Item": small}},
                                                                 {"Put": {"TableName": TABLE, "Item": big}}]),
            "ValidationException", aws_limits.ITEM_TOO_LARGE)
    assert dynamodb.scan(TableName=TABLE)["Items"] == []


def grow(dynamodb, size, key=KEY):
    """SET p to what makes the item `size` bytes."""
    return dynamodb.update_item(TableName=TABLE, Key=key, UpdateExpression="SET p = :p",
                                ExpressionAttributeValues={":p": sized(size, key=key["pk"]["S"])["p"]})


def test_an_update_growing_an_item_to_400_kib_is_stored_and_past_it_is_refused_leaving_the_item_as_it_was(dynamodb):
    before = {**KEY, "note": {"S": "kept"}, "p": {"S": "small"}}
    dynamodb.put_item(TableName=TABLE, Item=before)
    rest = aws_limits.item_size({"note": before["note"]})
    refused(lambda: grow(dynamodb, aws_limits.ITEM_LIMIT - rest + 1),
            "ValidationException", aws_limits.UPDATE_TOO_LARGE)
    assert stored(dynamodb) == before
    refused(lambda: dynamodb.update_item(TableName=TABLE, Key=KEY,
                                         UpdateExpression="REMOVE note SET p = :p ADD n :one",
                                         ExpressionAttributeValues={":p": {"S": "y" * aws_limits.ITEM_LIMIT},
                                                                    ":one": {"N": "1"}}),
            "ValidationException", aws_limits.UPDATE_TOO_LARGE)
    assert stored(dynamodb) == before
    grow(dynamodb, aws_limits.ITEM_LIMIT - rest)
    assert aws_limits.item_size(stored(dynamodb)) == aws_limits.ITEM_LIMIT


def test_an_update_creating_an_item_over_400_kib_creates_nothing(dynamodb):
    refused(lambda: grow(dynamodb, aws_limits.ITEM_LIMIT + 1), "ValidationException", aws_limits.UPDATE_TOO_LARGE)
    assert stored(dynamodb) is None


def test_an_update_moto_fails_midway_leaves_the_item_as_it_was(dynamodb):
    before = {**KEY, "n": {"N": "1"}, "s": {"S": "text"}}
    dynamodb.put_item(TableName=TABLE, Item=before)
    with pytest.raises(ClientError):  # the second action adds to a string: DynamoDB refuses the whole update
        dynamodb.update_item(TableName=TABLE, Key=KEY, UpdateExpression="ADD n :one, s :one",
                             ExpressionAttributeValues={":one": {"N": "1"}})
    assert stored(dynamodb) == before


def test_a_transacted_update_past_400_kib_cancels_the_transaction_with_a_validation_error(dynamodb):
    other = {"pk": {"S": "other"}}
    with pytest.raises(ClientError) as caught:
        dynamodb.transact_write_items(TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {**other, "v": {"S": "written?"}}}},
            {"Update": {"TableName": TABLE, "Key": KEY, "UpdateExpression": "SET p = :p",
                        "ExpressionAttributeValues": {":p": {"S": "y" * aws_limits.ITEM_LIMIT}}}},
        ])
    assert caught.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert caught.value.response["CancellationReasons"] == [
        {"Code": "None"}, {"Code": "ValidationError", "Message": aws_limits.UPDATE_TOO_LARGE}]
    assert stored(dynamodb) is None and stored(dynamodb, other) is None


def test_pynamodb_sees_the_refusal_as_dynamodb_s(aws):
    record = IdempotencyModel("key", fingerprint="f", request_id="r", expires_at=datetime.now(UTC),
                              response_body={"note": "n" * aws_limits.ITEM_LIMIT})
    with pytest.raises(PutError) as caught:
        record.save()
    assert caught.value.cause_response_code == "ValidationException"
    assert caught.value.cause_response_message == aws_limits.ITEM_TOO_LARGE


def test_concurrent_updates_keep_every_accepted_write_and_no_refused_one(dynamodb):
    dynamodb.put_item(TableName=TABLE, Item={**KEY, "n": {"N": "0"}})

    def write(attempt):
        big = attempt % 2 == 1
        try:
            dynamodb.update_item(TableName=TABLE, Key=KEY, UpdateExpression="ADD n :one SET p = :p",
                                 ExpressionAttributeValues={":one": {"N": "1"},
                                                            ":p": {"S": "y" * (aws_limits.ITEM_LIMIT if big else 10)}})
        except ClientError as exc:
            return exc.response["Error"]["Message"]
        return "written"

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(write, range(40)))
    assert answers == ["written", aws_limits.UPDATE_TOO_LARGE] * 20
    assert stored(dynamodb) == {**KEY, "n": {"N": "20"}, "p": {"S": "y" * 10}}


# Any string a JSON-protocol service would receive.

def test_a_lone_surrogate_in_a_dynamodb_string_is_refused_naming_where_it_is(dynamodb):
    refused(lambda: dynamodb.put_item(TableName=TABLE, Item={**KEY, "subject": {"S": "Breach \udcff"}}),
            "SerializationException", "Invalid UTF-8 (a lone surrogate) at Item.subject.S")
    refused(lambda: dynamodb.update_item(TableName=TABLE, Key=KEY, UpdateExpression="SET #n = :v",
                                         ExpressionAttributeNames={"#n": "names"},
                                         ExpressionAttributeValues={":v": {"L": [{"S": "ok"}, {"S": "\ud800!"}]}}),
            "SerializationException", "Invalid UTF-8 (a lone surrogate) at ExpressionAttributeValues.:v.L[1].S")
    refused(lambda: dynamodb.put_item(TableName=TABLE, Item={**KEY, "sub\udcffject": {"S": "Breach"}}),
            "SerializationException", "Invalid UTF-8 (a lone surrogate) at Item (a name)")
    assert stored(dynamodb) is None


def test_malformed_parameters_are_left_to_botocore_s_validation(dynamodb):
    with pytest.raises(ParamValidationError):
        dynamodb.put_item(TableName=TABLE, Item={"pk": "not an attribute value"})


def test_a_surrogate_pair_reaches_dynamodb_as_the_character_it_encodes(dynamodb):
    dynamodb.put_item(TableName=TABLE, Item={**KEY, "subject": {"S": "\ud83d\ude00"}})
    assert stored(dynamodb)["subject"] == {"S": "😀"}
