"""The words of each message, in Arabic and English."""

from html import escape

from notifier.money import format_amount

EMAIL = {
    "ar": {
        "subject": "تم استلام دفعتك للطلب {reference}",
        "greeting": "مرحبًا {name}،",
        "body": "شكرًا لك. استلمنا دفعتك بمبلغ {amount} للطلب {reference}.",
        "items": "المنتجات:",
        "address": "عنوان التوصيل: {address}",
        "closing": "سنخبرك عند خروج طلبك للتوصيل.",
    },
    "en": {
        "subject": "Payment received for order {reference}",
        "greeting": "Hello {name},",
        "body": "Thank you. We received your payment of {amount} for order "
        "{reference}.",
        "items": "Items:",
        "address": "Delivery address: {address}",
        "closing": "We will let you know when your order is on its way.",
    },
}


def _item_lines(order):
    return [
        f"{item.quantity} × {item.name} — "
        f"{format_amount(item.quantity * item.unit_amount, order.currency)}"
        for item in order.items
    ]


def customer_email(order, language):
    """(subject, text, html) for the customer of a paid order."""
    words = EMAIL.get(language, EMAIL["en"])
    values = {
        "reference": order.reference,
        "name": order.customer_name,
        "amount": format_amount(order.amount, order.currency),
        "address": order.address,
    }
    subject = words["subject"].format(**values)
    paragraphs = [words["greeting"].format(**values), words["body"].format(**values)]
    items = _item_lines(order)
    lines = list(paragraphs)
    if items:
        lines += ["", words["items"], *(f"- {line}" for line in items)]
    if order.address:
        lines += ["", words["address"].format(**values)]
    lines += ["", words["closing"]]
    text = "\n".join(lines) + "\n"

    direction = "rtl" if language == "ar" else "ltr"
    html_items = "".join(f"<li>{escape(line)}</li>" for line in items)
    html = (
        f'<!doctype html><html lang="{language}" dir="{direction}">'
        '<head><meta charset="utf-8"></head><body>'
        + "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
        + (f"<p>{escape(words['items'])}</p><ul>{html_items}</ul>" if items else "")
        + (
            f"<p>{escape(words['address'].format(**values))}</p>"
            if order.address
            else ""
        )
        + f"<p>{escape(words['closing'])}</p></body></html>"
    )
    return subject, text, html


def admin_parameters(order):
    """Body parameters of the admin template: reference, amount, customer."""
    return [
        order.reference,
        format_amount(order.amount, order.currency),
        order.customer_name,
        order.customer_phone or "-",
    ]


def courier_parameters(order):
    """Body parameters of the courier template: reference, customer, address."""
    return [
        order.reference,
        order.customer_name,
        order.customer_phone or "-",
        order.address or "-",
    ]
