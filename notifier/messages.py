"""The three notifications of a paid order, as registered tasks.

Each task reloads the order by id when it runs, never a captured object, so a
retry hours later sends what the database holds then.
"""

from dataclasses import dataclass

from models import Order
from notifier import templates
from notifier.channels.email import Email
from notifier.channels.whatsapp import TemplateMessage
from notifier.errors import PermanentError
from notifier.tasks import registry

EMAIL_CUSTOMER = "email_customer"
WHATSAPP_ADMIN = "whatsapp_admin"
WHATSAPP_COURIER = "whatsapp_courier"


@dataclass
class Context:
    """What a task may use: the settings and the channels."""

    settings: object
    channels: dict


def kinds_for(order, settings):
    """The notifications a paid order gets: none for a missing recipient."""
    kinds = [EMAIL_CUSTOMER]
    if settings.admin_whatsapp:
        kinds.append(WHATSAPP_ADMIN)
    if order.courier_phone:
        kinds.append(WHATSAPP_COURIER)
    return kinds


def message_id(notification, settings):
    """The same Message-ID on every attempt of one notification."""
    domain = settings.mail_from.rpartition("@")[2] or "localhost"
    return f"<notification-{notification.id}@{domain}>"


def _order(notification):
    order = Order.get_or_none(Order.id == notification.order_id)
    if order is None:
        raise PermanentError("the order of this notification no longer exists")
    return order


@registry.task(EMAIL_CUSTOMER)
def email_customer(notification, ctx):
    order = _order(notification)
    language = ctx.settings.mail_language
    subject, text, html = templates.customer_email(order, language)
    email = Email(
        to=order.customer_email,
        to_name=order.customer_name,
        subject=subject,
        text=text,
        html=html,
        message_id=message_id(notification, ctx.settings),
    )
    return ctx.channels["email"].send_email(email)


def _whatsapp(notification, ctx, to, template, parameters):
    message = TemplateMessage(
        to=to,
        template=template,
        language=ctx.settings.whatsapp_language,
        parameters=parameters,
        key=f"notification-{notification.id}",
    )
    return ctx.channels["whatsapp"].send_template(message)


@registry.task(WHATSAPP_ADMIN)
def whatsapp_admin(notification, ctx):
    order = _order(notification)
    if not ctx.settings.admin_whatsapp:
        raise PermanentError("ADMIN_WHATSAPP is not set")
    return _whatsapp(
        notification,
        ctx,
        ctx.settings.admin_whatsapp,
        ctx.settings.whatsapp_template_admin,
        templates.admin_parameters(order),
    )


@registry.task(WHATSAPP_COURIER)
def whatsapp_courier(notification, ctx):
    order = _order(notification)
    if not order.courier_phone:
        raise PermanentError("the order has no courier phone")
    return _whatsapp(
        notification,
        ctx,
        order.courier_phone,
        ctx.settings.whatsapp_template_courier,
        templates.courier_parameters(order),
    )
