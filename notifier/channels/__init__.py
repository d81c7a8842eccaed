"""Where messages leave the service: SMTP, the WhatsApp Cloud API, the console."""

from notifier.channels.console import ConsoleChannel
from notifier.channels.email import EmailChannel
from notifier.channels.whatsapp import WhatsAppChannel


def build_channels(settings):
    """The channels the settings configure; the console stands in for the rest."""
    console = ConsoleChannel()
    return {
        "email": EmailChannel(settings) if settings.smtp_configured else console,
        "whatsapp": (
            WhatsAppChannel(settings) if settings.whatsapp_configured else console
        ),
    }


__all__ = ["ConsoleChannel", "EmailChannel", "WhatsAppChannel", "build_channels"]
