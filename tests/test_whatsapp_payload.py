"""The template message as the Cloud API receives it."""

from notifier.channels.whatsapp import TemplateMessage


def test_template_payload_has_the_cloud_api_shape():
    message = TemplateMessage(
        to="966504445566",
        template="order_paid_courier",
        language="ar",
        parameters=["A-1", "ليلى", "حي النخيل\nالرياض\t  شارع   ١"],
        key="notification-7",
    )
    assert message.payload() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "966504445566",
        "type": "template",
        "template": {
            "name": "order_paid_courier",
            "language": {"code": "ar"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "A-1"},
                        {"type": "text", "text": "ليلى"},
                        # Newlines, tabs and runs of spaces are refused there.
                        {"type": "text", "text": "حي النخيل الرياض شارع ١"},
                    ],
                }
            ],
        },
        "biz_opaque_callback_data": "notification-7",
    }
