"""Index the personal data of a stage's stored requests once, after upgrading to a version that has
erasures and retention.

Since then each new request carries the key of its requester (a hash of the contract id and the
address) and the key retention reads; requests stored before carry neither, so an erasure on request
and a contract's retention would not find them. This gives every such request its keys (a Scan of
the requests table, then one conditional write per request). Running it again changes nothing.

Usage, with credentials for the stage's account and region:
  python scripts/index_personal_data.py --stage prod
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from index_connect_queues import stage_environment  # noqa: E402 - a sibling script, found through the path above


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", required=True)
    args = parser.parse_args(argv)
    os.environ.update(stage_environment(args.stage))
    from chalicelib import erasures  # reads the stage's table names when used

    print(f"{erasures.index_stored_requests()} request(s) indexed")


if __name__ == "__main__":
    main()
