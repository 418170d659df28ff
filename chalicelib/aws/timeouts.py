"""How long one call to AWS may take: every client's connect and read timeouts and retries, in one place.

botocore's defaults (60 s to connect, 60 s for each read, retried) let a service that never answers
hold the API past API Gateway's 29 s, when the client may already be retrying into a duplicate, and a
scan past its budget. In-region AWS endpoints connect in milliseconds and answer these calls in well
under a second, so the limits below fail fast and leave the retrying to whoever can do it better:

- SES: one attempt. The outbox retries with its own backoff and pacing, and a botocore retry after a
  read timeout could send a message SES had accepted a second time.
- SSM: two attempts; Parameter Store throttles bursts of reads (cold starts) and a read is safe to repeat.
- DynamoDB (PynamoDB's settings and the transactions' connection): three attempts, for its throttles.
- Lambda (the scan handing shard groups to copies of itself, queued asynchronously): two attempts; a
  repeated hand-off only runs a second scan of the same shards, which the outbox makes harmless.

A connect timeout of 2 s survives one lost SYN (retransmitted after 1 s). `worst` is what the callers
plan with: the API's synchronous send and the scan's decision to start a send use it.
"""
from dataclasses import dataclass

from botocore.config import Config


@dataclass(frozen=True)
class CallLimits:
    connect: float  # seconds to open a connection
    read: float  # seconds a response may stay silent
    attempts: int  # in all, the first one included

    @property
    def worst(self):
        """The longest one call can take: every attempt timing out, with the longest backoffs botocore's
        standard retry mode waits between them (a throttle's: up to 1 s, then 2 s...)."""
        return self.attempts * (self.connect + self.read) + sum(2.0 ** i for i in range(self.attempts - 1))

    def config(self, **more):
        """A botocore client Config with these limits (and `more` of Config's options)."""
        return Config(connect_timeout=self.connect, read_timeout=self.read,
                      retries={"mode": "standard", "total_max_attempts": self.attempts}, **more)


SES = CallLimits(connect=2.0, read=3.0, attempts=1)  # worst 5 s
SSM = CallLimits(connect=2.0, read=2.0, attempts=2)  # worst 9 s
DYNAMODB = CallLimits(connect=2.0, read=3.0, attempts=3)  # worst 18 s
LAMBDA = CallLimits(connect=2.0, read=3.0, attempts=2)  # worst 11 s
