"""Where our CPU goes per notification: one scan of N due breach alerts, every step on one thread.

    PYTHONPATH=tests .venv/bin/python bench/notification_profile.py            # 300 due, by step
    PYTHONPATH=tests .venv/bin/python bench/notification_profile.py --profile  # and cProfile's top frames

The scan's pool is replaced by one that runs each task at once on the scan's thread, so a profile sees
every frame and no thread switching is counted. moto's request handler is timed and left out (with
--profile, the profiler is paused inside it): what is left is ours, botocore's side of each call
included. Each step's time is its CPU (thread time) less moto's inside it; steps nest (a send holds
its message, its SES call and its mark). No latency is injected and the rate is not limited.
"""
import argparse
import cProfile
import os
import pstats
import time
from collections import Counter
from concurrent.futures import Future

import burst_bench  # first: through common, it sets the environment the table models read at import
import common
from botocore.client import BaseClient
from moto.core.botocore_stubber import BotocoreStubber

from chalicelib import evaluation, scanner
from chalicelib.aws import outbox, store


class OnThisThread:
    """A ThreadPoolExecutor that runs each task as it is submitted."""

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, task, *args):
        future = Future()
        try:
            future.set_result(task(*args))
        except Exception as exc:  # noqa: BLE001 - handed to the scan as a worker's would be
            future.set_exception(exc)
        return future


class Steps:
    """CPU per step, less moto's inside it."""

    def __init__(self, profile):
        self.cpu, self.moto, self.calls = Counter(), Counter(), Counter()
        self.profile, self._open = profile, []

    def wrap(self, owner, name, label):
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            self._open.append(label)
            started = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                self._open.pop()
                self.cpu[label] += time.thread_time() - started
                self.calls[label] += 1

        setattr(owner, name, timed)

    def install(self):
        stub, steps = BotocoreStubber.__call__, self

        def moto(stubber, *args, **kwargs):
            if steps.profile:
                steps.profile.disable()
            started = time.thread_time()
            try:
                return stub(stubber, *args, **kwargs)
            finally:
                spent = time.thread_time() - started
                for label in {*steps._open, "all"}:
                    steps.moto[label] += spent
                if steps.profile:
                    steps.profile.enable()

        BotocoreStubber.__call__ = moto
        scanner.ThreadPoolExecutor = OnThisThread
        for owner, name, label in STEPS:
            self.wrap(owner, name, label)


STEPS = ((scanner, "_read_due", "batch read"), (scanner, "_visit", "visit"),
         (evaluation, "state_of", "visit: evaluation"), (outbox, "outbox_entry", "visit: outbox entry"),
         (outbox, "enqueue", "visit: put, created leased"), (store, "refresh_cache", "visit: request update"),
         (scanner, "_send", "send"), (outbox, "build_message", "send: message build"),
         (outbox.EmailMessage, "as_bytes", "send: message bytes"), (outbox, "mark_sent", "send: mark sent"),
         (BaseClient, "_make_api_call", "all AWS calls, client side"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--due", type=int, default=300)
    parser.add_argument("--profile", action="store_true", help="also print cProfile's top frames (ours)")
    args = parser.parse_args()
    profile = cProfile.Profile() if args.profile else None
    steps = Steps(profile)
    steps.install()
    with common.fresh_account():
        burst_bench.fill(args.due)
        os.environ[outbox.SEND_RATE_VARIABLE] = "100000"
        if profile:
            profile.enable()
        started = time.process_time()
        report = scanner.scan(burst_bench.NOW)
        cpu = time.process_time() - started
        if profile:
            profile.disable()
    assert report.sent == args.due, report
    n = args.due
    print(f"{n} notifications: CPU {cpu / n * 1000:.2f} ms each, moto {steps.moto['all'] / n * 1000:.2f}, "
          f"ours {(cpu - steps.moto['all']) / n * 1000:.2f}\n")
    print("| step | per notification | ours (ms) |\n| :--- | ---: | ---: |")
    for label in (label for _, _, label in STEPS):
        print(f"| {label} | {steps.calls[label] / n:.2f} | {(steps.cpu[label] - steps.moto[label]) / n * 1000:.2f} |")
    if profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
