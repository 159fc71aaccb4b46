"""Where a `PushClient` connects: its receiver's addresses, checked, and the order it tries them in.

A push receiver can move: when the worker hosting it dies, the driver starts it on another worker, at
another address (issue 14). A client given several addresses tries them in turn; one given a resolver
asks it for the current address before each connection. Either way the client keeps its producer session
(token and sequence numbers), so its resends to the moved receiver are recognised as resends.

`AddressRotation` is the decision for a fixed list, as a pure value (no I/O; the client applies it):

- Connect to the current address; after a successful connection stay on it (`after_success`).
- After a failed connection (refused, timed out, broken) move on to the next address at once; only when
  every address failed since the last success, or since the last pause (a round), is a back-off pause
  due (`after_failure`). So a receiver that moved is found without waiting out a pause per dead address,
  and a receiver that is down everywhere is not hammered: pauses grow per round, as for one address.

A resolver's answer is one address, so each failed connection to it is a round of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from dstream.errors import DStreamValueError

Address = tuple[str, int]


def check_address(value: object, what: str) -> Address:
    """Return `value` as a (host, port) pair, or raise naming `what` and the value.

    Raises:
        DStreamValueError: `value` is not a pair of a non-empty str and an int port in 1..65535.
    """
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise DStreamValueError(f"{what} must be a (host, port) pair, got {value!r}")
    host, port = value
    if not isinstance(host, str) or not host:
        raise DStreamValueError(f"{what}: host must be a non-empty str, got {host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port <= 65535:
        raise DStreamValueError(f"{what}: port must be an int in 1..65535, got {port!r}")
    return host, port


def check_addresses(value: object) -> tuple[Address, ...]:
    """Return `value`, a non-empty sequence of (host, port) pairs, as a tuple; raise naming a bad one.

    Raises:
        DStreamValueError: `value` is not a list or tuple, is empty, or holds a bad pair.
    """
    if not isinstance(value, list | tuple) or not value:
        raise DStreamValueError(f"addresses must be a non-empty list of (host, port) pairs, got {value!r}")
    return tuple(check_address(item, f"addresses[{n}]") for n, item in enumerate(value))


@dataclass(frozen=True)
class AddressRotation:
    """The address a client connects to next, among fixed addresses, and when to pause.

    Attributes:
        addresses: the receiver's possible addresses, tried in this order, round after round.
        index: the address to connect to next.
        failed_in_round: failed connections since the last success or the last pause.
    """

    addresses: tuple[Address, ...]
    index: int = 0
    failed_in_round: int = 0

    def __post_init__(self) -> None:
        if not self.addresses:
            raise DStreamValueError("an AddressRotation needs at least one address, got none")

    @property
    def current(self) -> Address:
        """The address to connect to next."""
        return self.addresses[self.index]

    def after_success(self) -> AddressRotation:
        """A connection to `current` succeeded: stay on it, and start a new round."""
        return replace(self, failed_in_round=0)

    def after_failure(self) -> tuple[AddressRotation, bool]:
        """A connection to `current` failed: move to the next address; True when a pause is due.

        A pause is due once every address failed in this round; the round then starts again.
        """
        failed = self.failed_in_round + 1
        pause = failed >= len(self.addresses)
        moved = replace(
            self, index=(self.index + 1) % len(self.addresses), failed_in_round=0 if pause else failed
        )
        return moved, pause
