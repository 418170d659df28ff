"""Domain errors. Each carries the `Code` the API reports (Chalice's names); the core never sees HTTP."""


class SlaError(Exception):
    """Base of every error the service reports to a caller as {"Code", "Message"}."""

    code = "BadRequestError"

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class ValidationError(SlaError, ValueError):
    """A field of a document is missing or wrong. `field` is its dotted path, e.g. `calendar.hours[1]`.
    `problems` holds each (field, message) the error reports: one, or several found at once (`several`)."""

    code = "BadRequestError"
    MAX_NAMED = 10  # problems spelled out in one message; the rest are counted

    def __init__(self, field, message):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.problems = ((field, message),)

    @classmethod
    def several(cls, problems):
        """One error for a list of (field, message), e.g. every missing field of a body: its message
        names up to MAX_NAMED of them, "field: message; field: message", and counts the rest. With a
        single problem it is the plain one-field error. `field` is the first problem's."""
        error = cls(*problems[0])
        if len(problems) > 1:
            named = "; ".join(f"{field}: {message}" for field, message in problems[:cls.MAX_NAMED])
            rest = len(problems) - cls.MAX_NAMED
            error.message = named + (f"; and {rest} more" if rest > 0 else "")
            error.args = (error.message,)
            error.problems = tuple(problems)
        return error


class Problems(list):
    """Collects the (field, message) of every check that fails, each check run on its own, so that one
    ValidationError names them all (`raise_any`)."""

    def run(self, check, *args):
        """check(*args), or None when it raises a ValidationError, whose problems are kept."""
        try:
            return check(*args)
        except ValidationError as exc:
            self.extend(exc.problems)
            return None

    def raise_any(self):
        if self:
            raise ValidationError.several(list(self))


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
