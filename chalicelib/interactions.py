"""Phone calls and chats of a contract, posted in batches by its client systems (or its contact
center's feed): validated whole, then stored so that a re-sent id replaces its record. Amazon Connect
contact records come as the legs of customer contacts (`store_contact_legs`)."""
from collections import Counter

from chalicelib import contracts, evaluation
from chalicelib.aws import store
from chalicelib.core.customer_contacts import CHANNELS, customer_interaction, newer
from chalicelib.core.intake import INTERACTION_RETENTION, parse_interactions

MAX_BODY = 256 * 1024  # 500 interactions with long ids and offsets fit in about 150 KiB


def post_interactions(principal, contract_id, body, now):
    """POST /contracts/{id}/interactions: every item is checked before any is stored (a refused batch
    stores nothing). `accepted` counts the items stored, `replaced` those that replaced a record."""
    policy = evaluation.policy_of(contracts.latest_contract_of(principal, contract_id))
    interactions = parse_interactions(body, policy, now)
    return store_batch(contract_id, interactions)


def store_batch(contract_id, interactions):
    replaced = store.save_interactions(contract_id, interactions, INTERACTION_RETENTION)
    return {"accepted": len(interactions), "replaced": replaced}


def store_contact_legs(contract_id, contacts, now):
    """Add Amazon Connect legs ({customer contact id: {ContactId: Leg}}) to the contract's customer
    contacts and store each one's interaction, computed again from all its legs. A leg replaces the
    stored copy of its record unless that copy is later. Returns the counts stored (legs written),
    replaced (of them, those that replaced a stored copy), duplicates (legs the store holds a later
    copy of) and contacts (customer contacts written)."""

    def merge_and_save():
        counts = Counter()
        stored = store.customer_contacts(contract_id, sorted(contacts))
        changes = []
        for customer_contact_id, arriving in sorted(contacts.items()):
            record = stored.get(customer_contact_id)
            legs = dict(record.legs) if record is not None else {}
            for contact_id, leg in arriving.items():
                kept = legs.get(contact_id)
                if kept is not None and not newer(leg, kept):
                    counts["duplicates"] += 1
                    continue
                counts["stored"] += 1
                counts["replaced"] += kept is not None
                legs[contact_id] = leg
            first = legs.get(customer_contact_id) or min(legs.values(), key=lambda leg: leg.contact_id)
            changes.append((customer_contact_id, legs,
                            customer_interaction(customer_contact_id, legs, CHANNELS[first.channel]), record))
        store.save_customer_contacts(contract_id, changes, INTERACTION_RETENTION, now)
        return counts | {"contacts": len(changes)}

    return store.retrying(merge_and_save, "the contact records of a customer contact")
