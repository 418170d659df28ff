"""Time budgets for scheduled functions: stop taking new work before the Lambda timeout.

The budget runs on a monotonic clock (never the wall clock, which tests travel), capped by what the
Lambda context says is left, less a safety margin for finishing the item in hand and the final log.
"""
import time

MARGIN_SECONDS = 10.0  # at most; a short-lived context keeps a fifth of its time instead


class Budget:
    def __init__(self, seconds, context=None, clock=time.monotonic):
        limit = seconds
        if context is not None:
            remaining = context.get_remaining_time_in_millis() / 1000
            limit = min(limit, remaining - min(MARGIN_SECONDS, remaining * 0.2))
        self._clock = clock
        self._deadline = clock() + max(0.0, limit)

    def left(self):
        """Seconds left (negative once spent)."""
        return self._deadline - self._clock()

    @property
    def spent(self):
        return self.left() <= 0

    def share(self, fraction):
        """A budget for part of the work: `fraction` of what is left now, never beyond this one."""
        return Budget(max(0.0, self.left()) * fraction, clock=self._clock)

    def ending_early(self, seconds):
        """This budget less its last `seconds`: work that may take that long starts only within it."""
        return Budget(self.left() - seconds, clock=self._clock)

    def fits(self, seconds):
        """Does work of at most `seconds` end within the budget if it starts now?"""
        return self.left() >= seconds
