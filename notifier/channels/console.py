"""The console channel: logs what would be sent. Used when nothing is set up."""

import logging

from notifier.masking import mask_email, mask_phone

log = logging.getLogger("notifier.channels.console")


class ConsoleChannel:
    name = "console"

    def send_email(self, email):
        log.info(
            "email to %s, subject %r, Message-ID %s (console: not sent)\n%s",
            mask_email(email.to),
            email.subject,
            email.message_id,
            email.text,
        )
        return email.message_id

    def send_template(self, message):
        log.info(
            "whatsapp template %s (%s) to %s, parameters %s (console: not sent)",
            message.template,
            message.language,
            mask_phone(message.to),
            [_mask(p) for p in message.parameters],
        )
        return f"console-{message.key}"

    def close(self):
        pass


def _mask(value):
    value = str(value)
    if "@" in value:
        return mask_email(value)
    if value.lstrip("+").isdigit() and len(value) >= 8:
        return mask_phone(value.lstrip("+"))
    return value
