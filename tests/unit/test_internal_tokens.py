"""mesh.identity.Minter: the internal token of a (caller, method) is reused for a few seconds."""
import time

from mesh import identity
from mesh.identity import Identity, Minter

SECRET = "s" * 32
ALICE = Identity("alice", frozenset({"orders.read"}), "app-1")


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_a_token_is_reused_for_the_same_caller_and_method_then_minted_anew():
    clock = Clock()
    minter = Minter(SECRET, clock)
    first = minter.mint(ALICE, "/erp.orders.v1.OrderService/GetOrder")
    # what the services check: valid, for that method and that caller only
    assert identity.verify(SECRET, first, "/erp.orders.v1.OrderService/GetOrder") == ALICE
    clock.now += Minter.REUSE_SECONDS - 0.5
    assert minter.mint(ALICE, "/erp.orders.v1.OrderService/GetOrder") == first
    clock.now += 1
    assert minter.mint(ALICE, "/erp.orders.v1.OrderService/GetOrder") != first


def test_another_caller_or_method_gets_a_token_of_its_own():
    minter = Minter(SECRET, Clock())
    token = minter.mint(ALICE, "/erp.orders.v1.OrderService/GetOrder")
    bob = Identity("bob", ALICE.scopes, "app-1")
    assert identity.verify(SECRET, minter.mint(bob, "/erp.orders.v1.OrderService/GetOrder"),
                           "/erp.orders.v1.OrderService/GetOrder").subject == "bob"
    assert minter.mint(ALICE, "/erp.orders.v1.OrderService/ListOrders") != token
    fewer_scopes = Identity("alice", frozenset(), "app-1")
    assert identity.verify(SECRET, minter.mint(fewer_scopes, "/erp.orders.v1.OrderService/GetOrder"),
                           "/erp.orders.v1.OrderService/GetOrder").scopes == frozenset()


def test_a_reused_token_has_most_of_its_life_left_when_sent():
    assert identity.TTL_SECONDS - Minter.REUSE_SECONDS >= 2 * identity.LEEWAY_SECONDS
