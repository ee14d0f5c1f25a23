"""The notification templates, as data: one subject and plain-text body per event type.

Fields are `${name}` placeholders (string.Template). Every template also gets
`customer_name` and `customer_id` (for a supplier: its name and party id `supplier:<id>`); the other fields are what services.notification.events
takes from each event. A template naming a field its event does not provide fails to
render (a test renders every one).
"""
from __future__ import annotations

import dataclasses
from string import Template

from erp.events.v1 import finance_events_pb2 as fin_ev
from erp.events.v1 import orders_events_pb2 as orders_ev
from erp.events.v1 import procurement_events_pb2 as procurement_ev
from services.notification.domain import Rendered


@dataclasses.dataclass(frozen=True)
class NotificationTemplate:
    subject: Template
    body: Template


def _template(subject: str, body: str) -> NotificationTemplate:
    return NotificationTemplate(Template(subject), Template(body))


_SIGNATURE = "\n-- \nThis message was sent automatically by the ERP; please do not reply to it.\n"

TEMPLATES: dict[str, NotificationTemplate] = {
    orders_ev.OrderConfirmed.DESCRIPTOR.full_name: _template(
        "Order ${order_id} confirmed",
        "Dear ${customer_name},\n\n"
        "your order ${order_id} is confirmed. We have reserved the goods and will ship them soon.\n\n"
        "${lines}\n\n"
        "Total before tax: ${total}\n"
        "Your invoice follows separately.\n" + _SIGNATURE,
    ),
    orders_ev.OrderRejected.DESCRIPTOR.full_name: _template(
        "Order ${order_id} could not be accepted",
        "Dear ${customer_name},\n\n"
        "we are sorry: your order ${order_id} could not be accepted.\n\n"
        "Reason: ${reason}\n\n"
        "Nothing has been reserved or charged. Please contact us if you have questions.\n" + _SIGNATURE,
    ),
    fin_ev.InvoiceIssued.DESCRIPTOR.full_name: _template(
        "Invoice ${invoice_number} for order ${order_id}",
        "Dear ${customer_name},\n\n"
        "we have issued invoice ${invoice_number} for your order ${order_id}.\n\n"
        "Amount due: ${total} (tax included)\n"
        "Due date: ${due_date}\n" + _SIGNATURE,
    ),
    fin_ev.PaymentReceived.DESCRIPTOR.full_name: _template(
        "Payment of ${amount} received",
        "Dear ${customer_name},\n\n"
        "thank you: we have received your payment of ${amount} for order ${order_id}.\n\n"
        "${balance}\n" + _SIGNATURE,
    ),
    orders_ev.OrderShipped.DESCRIPTOR.full_name: _template(
        "Order ${order_id} has shipped",
        "Dear ${customer_name},\n\n"
        "your order ${order_id} has left our warehouse:\n\n"
        "${lines}\n" + _SIGNATURE,
    ),
    procurement_ev.PurchaseOrderApproved.DESCRIPTOR.full_name: _template(
        "Purchase order ${purchase_order_number}",
        "Dear ${customer_name},\n\n"
        "please deliver the goods of our purchase order ${purchase_order_number} to warehouse ${warehouse_code}:\n\n"
        "${lines}\n\n"
        "Order total: ${total}\n"
        "Please quote ${purchase_order_number} on your delivery note and on your bill.\n" + _SIGNATURE,
    ),
}


def render(event_type: str, fields: dict[str, str]) -> Rendered:
    """The subject (one line) and body for an event; KeyError for an unknown type or field."""
    template = TEMPLATES[event_type]
    subject = " ".join(template.subject.substitute(fields).split())  # no line breaks in a header
    return Rendered(subject[:200], template.body.substitute(fields))
