"""Money conservation over any sequence of commands, on the pure deciders.

Transfers advance one step at a time, interleaved with everything else, the way the
process manager and the API interleave in production. A step may also run again from
the transfer's state before its last step, the way a second manager lagging behind the
first runs it (two managers for a while, or a retry after a crash); the store keeps the
first outcome under the step's event id, which the model keeps in ``Bank.decided``.
At every point: no balance is negative, and the balances plus the money in flight
(debited, not yet credited or given back) equal deposits minus withdrawals. Once every
transfer is finished, the balances alone do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from commands.domain import account, transfer
from commands.domain.account import (
    AccountCommand,
    AccountState,
    CloseAccount,
    Deposit,
    OpenAccount,
    Withdraw,
)
from commands.domain.transfer import RequestTransfer, TransferState, TransferStatus
from commands.domain.transfer_policy import Step, next_step, record_outcome, step_command
from commands.errors import DomainError
from commands.events import AccountTransferLegRefused, DomainEvent

ACCOUNTS = 4


@dataclass
class Bank:
    accounts: dict[str, AccountState] = field(default_factory=dict)
    transfers: dict[str, TransferState] = field(default_factory=dict)
    previous: dict[str, TransferState] = field(default_factory=dict)
    decided: dict[tuple[str, Step], DomainEvent] = field(default_factory=dict)
    deposited: int = 0
    withdrawn: int = 0

    def run(self, command: AccountCommand) -> bool:
        state = self.accounts.get(command.account_id, account.decider.initial_state)
        try:
            events = account.decider.decide(state, command)
        except DomainError:
            return False
        self.accounts[command.account_id] = account.decider.fold(events, state)
        return True

    def request(self, command: RequestTransfer) -> None:
        state = self.transfers.get(command.transfer_id, transfer.decider.initial_state)
        try:
            events = transfer.decider.decide(state, command)
        except DomainError:
            return
        self.transfers[command.transfer_id] = transfer.decider.fold(events, state)

    def step(self, transfer_id: str, *, lagging: bool = False) -> None:
        """One step of the process manager on one transfer; ``lagging``: of a manager
        that still sees the transfer as it was before its last step."""
        current = self.transfers[transfer_id]
        state = self.previous.get(transfer_id, current) if lagging else current
        step = next_step(state)
        if step is None:
            return
        outcome = record_outcome(state, step, self.leg(state, step))
        try:
            recorded = transfer.decider.decide(current, outcome)
        except DomainError:
            return  # recorded already (the expected version refuses it in the store)
        self.previous[transfer_id] = current
        self.transfers[transfer_id] = transfer.decider.fold(recorded, current)

    def leg(self, state: TransferState, step: Step) -> str | None:
        """The account leg of ``step``: decided by its first run, whose event (the leg
        or its refusal) the store keeps under the step's id; the refusal's code."""
        key = (state.transfer_id, step)
        if key not in self.decided:
            command = step_command(state, step)
            before = self.accounts.get(command.account_id, account.decider.initial_state)
            [event] = account.decider.decide(before, command)
            self.accounts[command.account_id] = account.decider.evolve(before, event)
            self.decided[key] = event
        event = self.decided[key]
        return event.reason if isinstance(event, AccountTransferLegRefused) else None

    def in_flight(self) -> int:
        moving = {TransferStatus.SOURCE_DEBITED, TransferStatus.COMPENSATING}
        return sum(t.amount for t in self.transfers.values() if t.status in moving)

    def check(self) -> None:
        assert all(state.balance >= 0 for state in self.accounts.values())
        held = sum(state.balance for state in self.accounts.values())
        assert held + self.in_flight() == self.deposited - self.withdrawn


account_ids = st.integers(0, ACCOUNTS - 1).map(lambda i: f"acc-{i}")
amounts = st.one_of(st.integers(1, 500), st.integers(1, 500), st.integers(1, 10**12))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("open"), account_ids),
        st.tuples(st.just("deposit"), account_ids, amounts),
        st.tuples(st.just("deposit"), account_ids, amounts),
        st.tuples(st.just("withdraw"), account_ids, amounts),
        st.tuples(st.just("close"), account_ids),
        st.tuples(st.just("transfer"), account_ids, account_ids, st.integers(1, 300)),
        st.tuples(st.just("transfer"), account_ids, account_ids, amounts),
        st.tuples(st.just("step"), st.integers(0, 30)),
        st.tuples(st.just("step"), st.integers(0, 30)),
        st.tuples(st.just("lagging step"), st.integers(0, 30)),
    ),
    max_size=60,
)
# Most histories start with every account open; some do not (unknown accounts).
histories = st.builds(
    lambda opened, ops: [*[("open", f"acc-{i}") for i in range(opened)], *ops],
    st.sampled_from([ACCOUNTS, ACCOUNTS, ACCOUNTS, 1, 0]),
    operations,
)


def apply(bank: Bank, operation: tuple[object, ...]) -> None:
    kind, *args = operation
    if kind == "open":
        bank.run(OpenAccount(account_id=str(args[0]), owner="x"))
    elif kind == "deposit":
        if bank.run(Deposit(account_id=str(args[0]), amount=int(str(args[1])))):
            bank.deposited += int(str(args[1]))
    elif kind == "withdraw":
        if bank.run(Withdraw(account_id=str(args[0]), amount=int(str(args[1])))):
            bank.withdrawn += int(str(args[1]))
    elif kind == "close":
        bank.run(CloseAccount(account_id=str(args[0])))
    elif kind == "transfer":
        transfer_id = f"tr-{len(bank.transfers)}"
        source, target, amount = str(args[0]), str(args[1]), int(str(args[2]))
        bank.request(RequestTransfer(transfer_id=transfer_id, from_account=source,
                                     to_account=target, amount=amount))  # fmt: skip
    elif bank.transfers:
        ids = sorted(bank.transfers)
        bank.step(ids[int(str(args[0])) % len(ids)], lagging=kind == "lagging step")


@settings(max_examples=300, deadline=None)
@given(histories)
def test_money_is_conserved(ops: list[tuple[object, ...]]) -> None:
    bank = Bank()
    for operation in ops:
        apply(bank, operation)
        bank.check()
    for transfer_id in sorted(bank.transfers):
        for _ in range(3):
            bank.step(transfer_id)
    assert all(t.finished for t in bank.transfers.values())
    assert bank.in_flight() == 0
    bank.check()
