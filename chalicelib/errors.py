"""Domain errors. The API layer maps each to an HTTP status; the core never knows about HTTP."""


class SlaError(Exception):
    """Base of every error the service reports to a caller as {"Code", "Message"}."""

    code = "BadRequest"

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class ValidationError(SlaError, ValueError):
    """A field of a document is missing or wrong. `field` is its dotted path, e.g. `calendar.hours[1]`."""

    code = "BadRequest"

    def __init__(self, field, message):
        super().__init__(f"{field}: {message}")
        self.field = field


class ConflictError(SlaError):
    """The request is valid but impossible in the current state (respond twice, resolve a resolved...)."""

    code = "Conflict"


class NotFoundError(SlaError):
    code = "NotFound"


class ForbiddenError(SlaError):
    code = "Forbidden"


class UnauthorizedError(SlaError):
    code = "Unauthorized"
