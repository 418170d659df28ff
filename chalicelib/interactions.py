"""Phone calls and chats of a contract, posted in batches by its client systems (or its contact
center's feed): validated whole, then stored so that a re-sent id replaces its record."""
from chalicelib import contracts
from chalicelib.aws import records, store
from chalicelib.core.intake import INTERACTION_RETENTION, parse_interactions

MAX_BODY = 256 * 1024  # 500 interactions with long ids and offsets fit in about 150 KiB


def post_interactions(principal, contract_id, body, now):
    """POST /contracts/{id}/interactions: every item is checked before any is stored (a refused batch
    stores nothing). `accepted` counts the items stored, `replaced` those that replaced a record."""
    policy = records.policy_of(contracts.latest_contract_of(principal, contract_id))
    interactions = parse_interactions(body, policy, now)
    return store_batch(contract_id, interactions)


def store_batch(contract_id, interactions):
    replaced = store.save_interactions(contract_id, interactions, INTERACTION_RETENTION)
    return {"accepted": len(interactions), "replaced": replaced}
