"""SIP transactions (RFC 3261 §17 with RFC 6026): retransmission and Timers A-M."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from agent_studio.media.embedded.sip.fields import FieldError
from agent_studio.media.embedded.sip.message import SipRequest, SipResponse
from agent_studio.media.embedded.sip.transport import Peer, SipTransport

ResponseHandler = Callable[[SipResponse], None]
TimeoutHandler = Callable[[], None]


@dataclass(frozen=True, slots=True)
class Timers:
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(10)


def _key(message: SipRequest | SipResponse, method: str) -> tuple[str, str]:
    via = message.top_via
    branch = via.branch or f"{message.call_id}|{message.cseq[0]}|{message.from_.tag}"
    return branch, method


class Transaction:
    def __init__(self, layer: TransactionLayer, key: tuple[str, str], peer: Peer) -> None:
        self.layer = layer
        self.key = key
        self.peer = peer
        self.state = "trying"
        self._timers: list[asyncio.TimerHandle] = []

    @property
    def reliable(self) -> bool:
        return self.peer.transport != "UDP"

    def _after(self, delay: float, callback: Callable[[], None]) -> None:
        self._timers.append(asyncio.get_running_loop().call_later(delay, callback))

    def _cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def terminate(self) -> None:
        self.state = "terminated"
        self._cancel_timers()
        self.layer._forget(self)

    def _linger(self, delay: float) -> None:
        """Stay around for `delay` to absorb retransmissions, then terminate."""
        self._cancel_timers()
        if delay <= 0:
            self.terminate()
        else:
            self._after(delay, self.terminate)


class ClientTransaction(Transaction):
    def __init__(
        self, layer: TransactionLayer, request: SipRequest, peer: Peer,
        on_response: ResponseHandler, on_timeout: TimeoutHandler,
    ) -> None:  # fmt: skip
        super().__init__(layer, _key(request, request.method), peer)
        self.request = request
        self._data = request.encode()
        self._on_response = on_response
        self._on_timeout = on_timeout
        self.invite = request.method == "INVITE"
        self.state = "calling" if self.invite else "trying"

    def start(self) -> None:
        t = self.layer.timers
        self.layer.transport.send_bytes(self._data, self.peer)
        if not self.reliable:
            self._after(t.t1, lambda: self._retransmit(t.t1))  # Timer A / E
        self._after(64 * t.t1, self._timed_out)  # Timer B / F

    def _retransmit(self, interval: float) -> None:
        if self.state not in ("calling", "trying", "proceeding"):
            return
        self.layer.transport.send_bytes(self._data, self.peer)
        nxt = min(2 * interval, self.layer.timers.t2) if not self.invite else 2 * interval
        if self.state == "proceeding":
            nxt = self.layer.timers.t2
        self._after(nxt, lambda: self._retransmit(nxt))

    def give_up(self) -> None:
        """Drop a transaction still waiting for its final response (after a CANCEL)."""
        if self.state in ("calling", "proceeding"):
            self.terminate()

    def _timed_out(self) -> None:
        if self.state in ("calling", "trying", "proceeding"):
            self.terminate()
            self._on_timeout()

    def receive(self, response: SipResponse) -> None:
        t = self.layer.timers
        if self.state == "terminated":
            return
        if response.status < 200:
            if self.state in ("calling", "trying", "proceeding"):
                if self.invite and self.state == "calling":
                    self._cancel_timers()  # Timers A and B stop once the far end is alive
                self.state = "proceeding"
                self._on_response(response)
            return
        if self.invite and response.status < 300:
            if self.state != "accepted":  # RFC 6026: 2xx retransmits go up; the TU re-ACKs
                self.state = "accepted"
                self._linger(64 * t.t1)  # Timer M
            self._on_response(response)
            return
        if self.invite:
            self.layer.transport.send(self._ack(response), self.peer)
            if self.state == "completed":
                return
            self.state = "completed"
            self._linger(0 if self.reliable else 64 * t.t1)  # Timer D
        else:
            if self.state == "completed":
                return
            self.state = "completed"
            self._linger(0 if self.reliable else t.t4)  # Timer K
        self._on_response(response)

    def _ack(self, response: SipResponse) -> SipRequest:
        """The ACK for a non-2xx final response: part of this transaction (§17.1.1.3)."""
        ack = SipRequest(method="ACK", uri=self.request.uri)
        h = self.request.headers
        ack.headers.add("via", h.get_all("via")[0])
        for route in h.get_all("route"):
            ack.headers.add("route", route)
        ack.headers.add("max-forwards", "70")
        ack.headers.add("from", h.get("from") or "")
        ack.headers.add("to", response.headers.get("to") or "")
        ack.headers.add("call-id", self.request.call_id)
        ack.headers.add("cseq", f"{self.request.cseq[0]} ACK")
        return ack


class ServerTransaction(Transaction):
    def __init__(self, layer: TransactionLayer, request: SipRequest, peer: Peer) -> None:
        super().__init__(layer, _key(request, request.method), peer)
        self.request = request
        self.invite = request.method == "INVITE"
        self.state = "proceeding" if self.invite else "trying"
        self.last: bytes | None = None
        self.on_ack_timeout: Callable[[], None] | None = None

    def respond(self, response: SipResponse) -> None:
        t = self.layer.timers
        if self.state in ("completed", "confirmed", "accepted", "terminated"):
            return
        self.last = response.encode()
        self.layer.transport.send_bytes(self.last, self.peer)
        if response.status < 200:
            self.state = "proceeding"
        elif self.invite and response.status < 300:
            self.state = "accepted"  # the TU retransmits its 2xx until the ACK
            self._linger(64 * t.t1)  # Timer L
        elif self.invite:
            self.state = "completed"
            if not self.reliable:
                self._after(t.t1, lambda: self._retransmit(t.t1))  # Timer G
            self._after(64 * t.t1, self._ack_timed_out)  # Timer H
        else:
            self.state = "completed"
            self._linger(0 if self.reliable else 64 * t.t1)  # Timer J

    def _retransmit(self, interval: float) -> None:
        if self.state != "completed" or self.last is None:
            return
        self.layer.transport.send_bytes(self.last, self.peer)
        nxt = min(2 * interval, self.layer.timers.t2)
        self._after(nxt, lambda: self._retransmit(nxt))

    def _ack_timed_out(self) -> None:
        self.terminate()
        if self.on_ack_timeout is not None:
            self.on_ack_timeout()

    def retransmitted(self) -> None:
        """The request came again: repeat our last response (none yet: absorb it)."""
        if self.state in ("proceeding", "completed", "trying") and self.last is not None:
            self.layer.transport.send_bytes(self.last, self.peer)

    def acked(self) -> None:
        if self.state == "completed":
            self.state = "confirmed"
            self._linger(0 if self.reliable else self.layer.timers.t4)  # Timer I


class TransactionLayer:
    def __init__(self, transport: SipTransport, timers: Timers) -> None:
        self.transport = transport
        self.timers = timers
        self._client: dict[tuple[str, str], ClientTransaction] = {}
        self._server: dict[tuple[str, str], ServerTransaction] = {}

    def send_request(
        self, request: SipRequest, peer: Peer,
        on_response: ResponseHandler, on_timeout: TimeoutHandler,
    ) -> ClientTransaction:  # fmt: skip
        txn = ClientTransaction(self, request, peer, on_response, on_timeout)
        self._client[txn.key] = txn
        txn.start()
        return txn

    def receive_response(self, response: SipResponse) -> bool:
        """Hand a response to its transaction; False if none matches (a stray)."""
        try:
            txn = self._client.get(_key(response, response.cseq[1]))
        except FieldError:
            return False
        if txn is None:
            return False
        txn.receive(response)
        return True

    def receive_request(self, request: SipRequest, peer: Peer) -> ServerTransaction | None:
        """A new server transaction for `request`, or None if it was absorbed."""
        if request.method == "ACK":
            txn = self._server.get(_key(request, "INVITE"))
            if txn is not None and txn.state in ("completed", "confirmed"):
                txn.acked()
                return None
            return ServerTransaction(self, request, peer)  # ACK for a 2xx: up to the TU
        key = _key(request, request.method)
        existing = self._server.get(key)
        if existing is not None:
            existing.retransmitted()
            return None
        txn = ServerTransaction(self, request, peer)
        self._server[key] = txn
        return txn

    def find_server(self, branch: str, method: str) -> ServerTransaction | None:
        return self._server.get((branch, method))

    def _forget(self, txn: Transaction) -> None:
        store: dict[tuple[str, str], ClientTransaction] | dict[tuple[str, str], ServerTransaction]
        store = self._client if isinstance(txn, ClientTransaction) else self._server
        if store.get(txn.key) is txn:
            del store[txn.key]

    def close(self) -> None:
        for txn in [*self._client.values(), *self._server.values()]:
            txn.terminate()

    def __len__(self) -> int:
        return len(self._client) + len(self._server)
