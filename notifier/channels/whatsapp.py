"""WhatsApp template messages through the Cloud API, with one shared Session."""

import logging
from dataclasses import dataclass, field

import requests
from requests.adapters import HTTPAdapter

from notifier.backoff import parse_retry_after
from notifier.errors import PermanentError, TransientError

log = logging.getLogger("notifier.channels.whatsapp")

# The Cloud API's error codes, decided on `code`, not on the HTTP status.
RETRY_CODES = frozenset({2, 4, 80007, 130429, 131000, 131016, 131056, 131057})
FINAL_CODES = frozenset({10, 100, 190, 131026, 131047, 132000, 132001})


@dataclass(frozen=True)
class TemplateMessage:
    to: str
    template: str
    language: str
    parameters: list = field(default_factory=list)
    key: str = ""

    def payload(self):
        body = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": self.to,
            "type": "template",
            "template": {
                "name": self.template,
                "language": {"code": self.language},
                "components": [
                    {
                        "type": "body",
                        "parameters": [
                            {"type": "text", "text": one_line(p)}
                            for p in self.parameters
                        ],
                    }
                ],
            },
        }
        if self.key:
            # Echoed back in status webhooks: tells a repeated send apart.
            body["biz_opaque_callback_data"] = self.key
        return body


def one_line(value):
    """A template parameter as the Cloud API takes it: no newlines or tabs
    and no long runs of spaces (it refuses those with code 132018)."""
    return " ".join(str(value).split())


def classify_response(response):
    """Raise the right DeliveryError for a non-success answer."""
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    code = error.get("code") if isinstance(error, dict) else None
    message = str(error.get("message", ""))[:300] if isinstance(error, dict) else ""
    text = f"WhatsApp HTTP {response.status_code}"
    if code is not None:
        text += f" code {code}"
    if message:
        text += f": {message}"
    if code in RETRY_CODES:
        return TransientError(text, retry_after=retry_after)
    if code in FINAL_CODES:
        return PermanentError(text)
    if response.status_code == 429 or response.status_code >= 500:
        return TransientError(text, retry_after=retry_after)
    return PermanentError(text)


class WhatsAppChannel:
    name = "whatsapp"

    def __init__(self, settings, session=None):
        self.settings = settings
        self.url = (
            f"{settings.whatsapp_api_url}/{settings.whatsapp_phone_number_id}/messages"
        )
        self.timeout = (
            settings.whatsapp_connect_timeout,
            settings.whatsapp_read_timeout,
        )
        self.session = session or requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=settings.threads)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers["Authorization"] = f"Bearer {settings.whatsapp_token}"

    def send_template(self, message):
        try:
            response = self.session.post(
                self.url, json=message.payload(), timeout=self.timeout
            )
        except requests.RequestException as exc:
            # Timeouts and refused or reset connections: try again later.
            raise TransientError(f"WhatsApp unreachable: {type(exc).__name__}") from exc

        if response.status_code != 200:
            raise classify_response(response)
        try:
            return response.json()["messages"][0]["id"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise PermanentError(
                "WhatsApp answered 200 without messages[0].id"
            ) from None

    def close(self):
        self.session.close()
