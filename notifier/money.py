"""Amounts in minor units, shown in major units with the currency's decimals."""

THREE_DECIMALS = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})
NO_DECIMALS = frozenset({"CLP", "ISK", "JPY", "KRW", "UGX", "VND", "XAF", "XOF"})


def decimals(currency):
    currency = currency.upper()
    if currency in THREE_DECIMALS:
        return 3
    if currency in NO_DECIMALS:
        return 0
    return 2


def format_amount(amount, currency):
    """`15000, "SAR"` -> `"150.00 SAR"`."""
    places = decimals(currency)
    if places == 0:
        return f"{amount} {currency.upper()}"
    sign = "-" if amount < 0 else ""
    whole, part = divmod(abs(amount), 10**places)
    return f"{sign}{whole}.{part:0{places}d} {currency.upper()}"
