"""Seed data for the local run: the demo contract (seed/demo-contract.json), its SES sender, its tokens.

Import this module only after the AWS environment is set (AWS_ENDPOINT_URL, SLA_TABLE_PREFIX):
`chalicelib.aws.tables` reads it at import time. Seeding is idempotent: re-running it against the same
tables leaves the contract at its current version when the document has not changed.
"""
import json
import os
from pathlib import Path

import boto3

from chalicelib import contracts, tokens
from chalicelib.core.errors import NotFoundError
from chalicelib.core.policy import parse_contract

DEMO_FILE = Path(__file__).resolve().parent.parent / "seed" / "demo-contract.json"
DEMO_ID = "demo"  # yours: the README's tour and the curl session of docs/local.md
MAKE_DEMO_ID = "national-day"  # `make demo`'s, under the same terms: its fortnight and your requests stay apart
BOOTSTRAP = tokens.Principal(tokens.BOOTSTRAP_ID, "admin", None)
_META_KEYS = ("contract_id", "version", "updated_at", "calendar_years")


def demo_document():
    return json.loads(DEMO_FILE.read_text("utf-8"))


def verify_sender(document):
    """Verify the contract's notify.sender as an SES identity, so that sending mail from it succeeds."""
    sender = document.get("notify", {}).get("sender")
    if sender:
        ses = boto3.client("ses", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
        ses.verify_email_identity(EmailAddress=sender)
    return sender


def ensure_contract(contract_id, document, now):
    """Store `document` unless the latest version already holds exactly it. Returns (version, changed)."""
    normalized, _ = parse_contract(document)
    try:
        current = contracts.get_contract(BOOTSTRAP, contract_id, now)
    except NotFoundError:
        current = None
    if current is not None and {k: v for k, v in current.items() if k not in _META_KEYS} == normalized:
        return current["version"], False
    stored, _ = contracts.put_contract(BOOTSTRAP, contract_id, document, now)
    return stored["version"], True


def seed_demo(now, contract_id=DEMO_ID):
    """Seed the demo contract and issue one agent and one client token for it.

    Returns {"contract_id", "version", "changed", "sender", "agent", "client"} (the tokens in clear:
    they are shown once, only their hashes are stored).
    """
    document = demo_document()
    sender = verify_sender(document)
    version, changed = ensure_contract(contract_id, document, now)
    issued = {role: tokens.issue_token(BOOTSTRAP, {"role": role, "contract_id": contract_id}, now)["token"]
              for role in ("agent", "client")}
    return {"contract_id": contract_id, "version": version, "changed": changed, "sender": sender, **issued}
