"""The service's exceptions: one base, one line each, translated at the boundary."""


class NotifierError(Exception):
    """Base of every error the service raises on purpose."""


class SettingsError(NotifierError):
    """A setting is missing or malformed; the message names the variable."""


class DeliveryError(NotifierError):
    """A channel could not deliver a message."""

    def __init__(self, message, retry_after=None):
        super().__init__(message)
        self.retry_after = retry_after


class TransientError(DeliveryError):
    """Worth another attempt later: timeouts, throttling, 4xx SMTP, 5xx HTTP."""


class PermanentError(DeliveryError):
    """Another attempt would fail the same way: bad recipient, bad template."""


class RequestError(NotifierError):
    """An HTTP request the service refuses; carries the status to answer with."""

    status = 400

    def __init__(self, message, status=None):
        super().__init__(message)
        if status is not None:
            self.status = status
