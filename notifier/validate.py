"""Small checks for JSON input; each failure is a RequestError(400)."""

from notifier.errors import RequestError


def need(data, name, kind, *, optional=False, where=""):
    """`data[name]` if it is of `kind` (bools are never ints)."""
    label = f"{where}{name}"
    if not isinstance(data, dict):
        raise RequestError(f"{where.rstrip('.') or 'body'} must be an object")
    value = data.get(name)
    if value is None:
        if optional:
            return None
        raise RequestError(f"{label} is required")
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise RequestError(f"{label} must be {_kind_name(kind)}")
    return value


def _kind_name(kind):
    return {int: "an integer", str: "a string", dict: "an object", list: "a list"}[kind]


def text(data, name, *, max_length, optional=False, multiline=False, where=""):
    value = need(data, name, str, optional=optional, where=where)
    if value is None:
        return None
    value = value.strip()
    if not value and not optional:
        raise RequestError(f"{where}{name} must not be empty")
    if len(value) > max_length:
        raise RequestError(f"{where}{name} is longer than {max_length} characters")
    allowed = "\n\t" if multiline else ""
    if any((ord(c) < 32 or ord(c) == 127) and c not in allowed for c in value):
        raise RequestError(f"{where}{name} contains control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate such as "\ud800"
        raise RequestError(f"{where}{name} is not valid Unicode") from None
    return value or None


def integer(data, name, *, minimum, maximum=10**15, optional=False, where=""):
    value = need(data, name, int, optional=optional, where=where)
    if value is not None and not minimum <= value <= maximum:
        raise RequestError(f"{where}{name} must be between {minimum} and {maximum}")
    return value


def currency(data, name, *, optional=False, where=""):
    value = need(data, name, str, optional=optional, where=where)
    if value is None:
        return None
    if len(value) != 3 or not value.isascii() or not value.isalpha():
        raise RequestError(f"{where}{name} must be a three-letter currency code")
    return value.upper()


def phone(data, name, *, optional=False, where=""):
    value = need(data, name, str, optional=optional, where=where)
    if value is None:
        return None
    digits = value.strip().lstrip("+")
    if not digits.isascii() or not digits.isdigit() or not 8 <= len(digits) <= 15:
        raise RequestError(f"{where}{name} must be a phone number in E.164 digits")
    return digits


def email(data, name, *, where=""):
    value = text(data, name, max_length=254, where=where)
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in value):
        raise RequestError(f"{where}{name} must be an email address")
    return value
