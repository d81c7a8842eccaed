"""Masking of personal data for logs: enough to recognise, not to contact."""


def mask_phone(phone):
    if not phone:
        return "-"
    digits = str(phone)
    if len(digits) <= 6:
        return "*" * len(digits)
    return digits[:4] + "*" * (len(digits) - 7) + digits[-3:]


def mask_email(address):
    if not address or "@" not in address:
        return "-"
    local, _, domain = address.rpartition("@")
    return (local[:1] or "*") + "***@" + domain
