"""Fill the Amazon Connect queue index of a stage once, after upgrading to a version that has it.

Since the index exists, each contract PUT claims the queues its version lists, and the contact-record
consumer reads the index instead of every contract; contracts stored before it have no claims yet, so
their records would count as unknown queues. This claims every queue a contract's latest version lists
and no contract claims (contracts in id order). Running it again changes nothing.

Usage, with credentials for the stage's account and region:
  python scripts/index_connect_queues.py --stage prod
"""
import argparse
import json
import os
from pathlib import Path

CONFIG = Path(__file__).resolve().parent.parent / ".chalice" / "config.json"


def stage_environment(stage):
    config = json.loads(CONFIG.read_text("utf-8"))
    if stage not in config["stages"]:
        raise SystemExit(f"no stage {stage!r} in {CONFIG}")
    return {**config.get("environment_variables", {}), **config["stages"][stage].get("environment_variables", {})}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", required=True)
    args = parser.parse_args(argv)
    os.environ.update(stage_environment(args.stage))
    from chalicelib import contracts  # reads the stage's table names when used

    written = contracts.claim_listed_queues()
    for queue_id, contract_id in sorted(written.items()):
        print(f"claimed queue {queue_id} for contract {contract_id}")
    print(f"{len(written)} queue(s) claimed")


if __name__ == "__main__":
    main()
