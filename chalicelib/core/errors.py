"""Domain errors. Each carries the `Code` the API reports (Chalice's names); the core never sees HTTP."""


class SlaError(Exception):
    """Base of every error the service reports to a caller as {"Code", "Message"}."""

    code = "BadRequestError"

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class ValidationError(SlaError, ValueError):
    """A field of a document is missing or wrong. `field` is its dotted path, e.g. `calendar.hours[1]`."""

    code = "BadRequestError"

    def __init__(self, field, message):
        super().__init__(f"{field}: {message}")
        self.field = field


class ConflictError(SlaError):
    """The request is valid but impossible in the current state (respond twice, resolve a resolved...)."""

    code = "ConflictError"


class NotFoundError(SlaError):
    code = "NotFoundError"


class ForbiddenError(SlaError):
    code = "ForbiddenError"


class UnauthorizedError(SlaError):
    code = "UnauthorizedError"


class CursorError(ValueError):
    """A paging cursor this API did not hand out for that listing. The caller knows which parameter
    carried it and reports it (400 naming it)."""
