"""The NotificationService servicer: protobuf to commands and back, nothing more."""
from __future__ import annotations

from erp.notification.v1 import notification_pb2 as pb
from erp.notification.v1 import notification_pb2_grpc
from mesh import protoconv
from mesh.service import Runtime
from services.notification import domain, handlers
from services.notification.adapters import NotificationUnitOfWork
from services.notification.domain import Delivery, Held, HoldStatus


# An enum field is given its value's name ("DELIVERY_STATUS_" + the domain's name): the message's constructor looks it
# up,
# and refuses a name the proto does not have.
def to_proto(d: Delivery) -> pb.Delivery:
    out = pb.Delivery(
        delivery_id=d.delivery_id, event_id=d.event_id, recipient=d.recipient,
        channel="CHANNEL_" + d.channel.name, attempts=d.attempts,
        delivered=d.status is domain.DeliveryStatus.DELIVERED, event_type=d.event_type, customer_id=d.customer_id,
        subject=d.subject, status="DELIVERY_STATUS_" + d.status.name,
        last_error=d.last_error, created_at=protoconv.timestamp(d.created_at),
    )
    if d.last_attempt_at is not None:
        out.last_attempt_at.CopyFrom(protoconv.timestamp(d.last_attempt_at))
    return out


def held_to_proto(h: Held) -> pb.HeldNotification:
    out = pb.HeldNotification(event_id=h.event_id, event_type=h.event_type, customer_id=h.customer_id,
                              status="HOLD_STATUS_" + h.status.name,
                              held_at=protoconv.timestamp(h.held_at))
    if h.settled_at is not None:
        out.settled_at.CopyFrom(protoconv.timestamp(h.settled_at))
    return out


def _hold_status(value: int) -> HoldStatus | None:
    """A HoldStatus number as the domain's: None (any) for UNSPECIFIED or a number this build does not know."""
    try:
        return HoldStatus(pb.HoldStatus.Name(value).removeprefix("HOLD_STATUS_").lower())
    except ValueError:
        return None


class NotificationServicer(notification_pb2_grpc.NotificationServiceServicer):
    def __init__(self, runtime: Runtime[NotificationUnitOfWork]) -> None:
        self.runtime = runtime

    def ListDeliveries(self, request: pb.ListDeliveriesRequest, context) -> pb.ListDeliveriesResponse:
        found, token = handlers.list_deliveries(self.runtime.uow(), domain.ListDeliveries(
            page_size=request.page.page_size, page_token=request.page.page_token, recipient=request.recipient,
            customer_id=request.customer_id, event_id=request.event_id))
        return pb.ListDeliveriesResponse(deliveries=[to_proto(d) for d in found], next_page_token=token)

    def ListHeldNotifications(self, request: pb.ListHeldNotificationsRequest,
                              context) -> pb.ListHeldNotificationsResponse:
        found, token = handlers.list_held(self.runtime.uow(), domain.ListHeld(
            page_size=request.page.page_size, page_token=request.page.page_token, customer_id=request.customer_id,
            status=_hold_status(request.status)))
        return pb.ListHeldNotificationsResponse(held_notifications=[held_to_proto(h) for h in found],
                                                next_page_token=token)
