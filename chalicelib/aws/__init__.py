"""The only code that touches AWS: DynamoDB models and the store, the outbox and SES, SSM, metrics.

The layers above catch AWS failures by `AWS_FAULTS` without importing botocore or PynamoDB."""
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

# DynamoDB or SES failing (throttling, an internal error, a timeout): the caller may retry.
AWS_FAULTS = (BotoCoreError, ClientError, PynamoDBException)


def aws_error_code(exc):
    """AWS's error code (ProvisionedThroughputExceededException...), when AWS answered at all."""
    if isinstance(exc, PynamoDBException):
        return exc.cause_response_code
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code")
    return None
