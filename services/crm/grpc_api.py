"""The CustomerService servicer: protobuf to commands and back, nothing more."""
from __future__ import annotations

import datetime as dt

from erp.crm.v1 import crm_pb2 as pb
from erp.crm.v1 import crm_pb2_grpc
from mesh import protoconv
from mesh.service import Runtime
from mesh.webhook_keys import SigningKeys
from services.crm import domain, handlers
from services.crm.adapters import CrmUnitOfWork
from services.crm.domain import Customer, Exposure


def _status_in(value: int) -> str:
    """A CustomerStatus number as the domain's status name: "" for UNSPECIFIED, the
    number itself (which the domain refuses) for one this build does not know."""
    if value == pb.CUSTOMER_STATUS_UNSPECIFIED:
        return ""
    try:
        return pb.CustomerStatus.Name(value).removeprefix("CUSTOMER_STATUS_").lower()
    except ValueError:
        return str(value)


def _status_out(status: domain.CustomerStatus) -> str:
    """The CustomerStatus value's name: what the message's constructor takes (and checks) for an enum."""
    return "CUSTOMER_STATUS_" + status.name




def _signing(s: domain.WebhookSigning) -> pb.WebhookSigning:
    """What the customer's webhook secret is (never the secret): shown with every read of the customer."""
    out = pb.WebhookSigning(secret_version=s.version, key_id=s.current.key_id if s.current else "")
    if s.current is not None and s.created_at is not None:
        out.secret_created_at.CopyFrom(protoconv.timestamp(s.created_at))
    if s.previous is not None and s.previous_expires_at is not None:
        out.previous_secret_expires_at.CopyFrom(protoconv.timestamp(s.previous_expires_at))
    return out


def to_proto(c: Customer) -> pb.Customer:
    return pb.Customer(
        customer_id=c.customer_id, name=c.name, status=_status_out(c.status),
        credit_limit=protoconv.money(c.currency_code, c.credit_limit), payment_terms_days=c.payment_terms_days,
        email=c.email, contacts=[pb.Contact(name=x.name, email=x.email, phone=x.phone, role=x.role)
                                 for x in c.contacts],
        webhook_url=c.webhook_url, version=c.version, webhook_signing=_signing(c.webhook_signing),
    )


def _exposure(c: Customer, e: Exposure) -> pb.Exposure:
    return pb.Exposure(open_orders=protoconv.money(c.currency_code, e.open_orders),
                       unpaid_invoices=protoconv.money(c.currency_code, e.unpaid_invoices),
                       total=protoconv.money(c.currency_code, e.total),
                       available_credit=protoconv.money(c.currency_code, e.available(c.credit_limit)))


def _duration(value) -> dt.timedelta:
    """A Duration as a timedelta; one too long for a timedelta (the domain refuses it anyway) is capped."""
    seconds = max(-1, min(value.seconds, 10**10))
    return dt.timedelta(seconds=seconds, microseconds=value.nanos // 1000)


class CustomerServicer(crm_pb2_grpc.CustomerServiceServicer):
    def __init__(self, runtime: Runtime[CrmUnitOfWork]) -> None:
        self.runtime = runtime
        # A key shorter than allowed stops the start-up here; the dev default is logged as a warning.
        keys = SigningKeys.from_settings(runtime.settings)
        keys.warn_if_dev_default()
        self.webhook_secrets = handlers.WebhookSecrets(keys)

    def CreateCustomer(self, request: pb.CreateCustomerRequest, context) -> pb.CreateCustomerResponse:
        c = request.customer
        customer, secret = handlers.create_customer_with_secret(self.runtime.uow(), domain.CreateCustomer(
            customer_id=c.customer_id, name=c.name, status=_status_in(c.status),
            credit_limit_amount=c.credit_limit.amount, credit_limit_currency=c.credit_limit.currency_code,
            payment_terms_days=c.payment_terms_days, email=c.email,
            contacts=tuple(domain.Contact(x.name, x.email, x.phone, x.role) for x in c.contacts),
            webhook_url=c.webhook_url), self.webhook_secrets)
        return pb.CreateCustomerResponse(customer=to_proto(customer), webhook_secret=secret)

    def GetCustomer(self, request: pb.GetCustomerRequest, context) -> pb.GetCustomerResponse:
        customer, exposure = handlers.get_customer(self.runtime.uow(), request.customer_id)
        return pb.GetCustomerResponse(customer=to_proto(customer), exposure=_exposure(customer, exposure))

    def ListCustomers(self, request: pb.ListCustomersRequest, context) -> pb.ListCustomersResponse:
        found, token = handlers.list_customers(self.runtime.uow(), request.page.page_size, request.page.page_token,
                                               _status_in(request.status))
        return pb.ListCustomersResponse(customers=[to_proto(c) for c in found], next_page_token=token)

    def UpdateCustomerStatus(self, request: pb.UpdateCustomerStatusRequest,
                             context) -> pb.UpdateCustomerStatusResponse:
        customer = handlers.update_customer_status(self.runtime.uow(), domain.UpdateCustomerStatus(
            request.customer_id, _status_in(request.status), request.reason))
        return pb.UpdateCustomerStatusResponse(customer=to_proto(customer))

    def SetCreditLimit(self, request: pb.SetCreditLimitRequest, context) -> pb.SetCreditLimitResponse:
        customer = handlers.set_credit_limit(self.runtime.uow(), domain.SetCreditLimit(
            request.customer_id, request.credit_limit.amount, request.credit_limit.currency_code))
        return pb.SetCreditLimitResponse(customer=to_proto(customer))

    def SetWebhookUrl(self, request: pb.SetWebhookUrlRequest, context) -> pb.SetWebhookUrlResponse:
        customer, secret = handlers.set_webhook_url(self.runtime.uow(), domain.SetWebhookUrl(
            request.customer_id, request.webhook_url), self.webhook_secrets)
        return pb.SetWebhookUrlResponse(customer=to_proto(customer), webhook_secret=secret)

    def RotateWebhookSecret(self, request: pb.RotateWebhookSecretRequest,
                            context) -> pb.RotateWebhookSecretResponse:
        overlap = _duration(request.overlap) if request.HasField("overlap") else None
        customer, secret = handlers.rotate_webhook_secret(self.runtime.uow(), domain.RotateWebhookSecret(
            request.customer_id, overlap), self.webhook_secrets)
        return pb.RotateWebhookSecretResponse(customer=to_proto(customer), webhook_secret=secret)
