"""The allocation policy of pools of several kinds, table-driven (no workers).

:func:`aiointerp._host._policy.plan` is pure: each case is a snapshot and the plan it must
give. The same cases on real workers: tests/host/test_auto.py ("capacity across kinds"),
each naming its row here.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from aiointerp._host._measures import Demand
from aiointerp._host._policy import (
    HYSTERESIS,
    Kind,
    Plan,
    Snapshot,
    cooldown,
    plan,
    shares,
)

INTERP, PROC = "interpreter", "process"
#: what a start costs in these cases: an interpreter, a process importing numpy
S_I, S_P = 0.02, 0.5
#: a kind below its share for this long has been so long enough (2 starts)
LONG = {"interpreter": 5.0, "process": 5.0}


def kind(name: str, **fields: Any) -> Kind:
    fields.setdefault("start_cost", S_I if name == INTERP else S_P)
    fields.setdefault("since_used", 0.0 if fields.get("idle") else math.inf)
    return Kind(**fields)


def snap(
    max_workers: int, i: dict[str, Any], p: dict[str, Any], **rest: Any
) -> Snapshot:
    return Snapshot(
        max_workers, {INTERP: kind(INTERP, **i), PROC: kind(PROC, **p)}, **rest
    )


def starts(result: Plan) -> dict[str, int]:
    return {name: count for name, count in result.start.items() if count}


# Each row: (snapshot, starts, conversions as (from, to, rule)).
CASES: dict[str, tuple[Snapshot, dict[str, int], list[tuple[str, str, str]]]] = {
    # 1. room first: a start per waiting caller, the kind without worker first
    "room: one start per caller nothing serves": (
        snap(4, {"busy": 1, "waiting": 2}, {"waiting": 1}),
        {INTERP: 2, PROC: 1},
        [],
    ),
    "room: the kind without a worker first": (
        snap(2, {"busy": 1, "waiting": 3, "head_wait": 1.0}, {"waiting": 1}),
        {PROC: 1},
        [],
    ),
    "room: a starting worker serves a caller": (
        snap(4, {"starting": 1, "waiting": 1}, {}),
        {},
        [],
    ),
    "room: a worker lost for cause is replaced at once": (
        snap(4, {"busy": 1, "since_used": 0.0}, {"replace": 1, "since_used": 0.1}),
        {PROC: 1},
        [],
    ),
    "room: no replacement for a kind no longer in use": (
        snap(4, {"busy": 1}, {"replace": 1, "since_used": 60.0}),
        {},
        [],
    ),
    "room: the reserve of the first kind, when nobody else needs room": (
        snap(4, {}, {"busy": 1}, reserve=2),
        {INTERP: 2},
        [],
    ),
    "room: callers before the reserve": (
        snap(2, {}, {"busy": 1, "waiting": 2}, reserve=1),
        {PROC: 1},
        [],
    ),
    "room: none while the pool backs off": (
        snap(4, {"waiting": 2}, {"waiting": 1}, can_start=False),
        {},
        [],
    ),
    # 2. no kind starves
    "starving: a freed worker of a kind with two makes room": (
        snap(2, {"idle": 1, "busy": 1, "waiting": 5, "demand": 6.0}, {"waiting": 1}),
        {},
        [(INTERP, PROC, "starving")],
    ),
    "starving: an idle worker of a kind nobody uses makes room": (
        snap(1, {"idle": 1, "since_used": 30.0}, {"waiting": 1}),
        {},
        [(INTERP, PROC, "starving")],
    ),
    "starving: waits for a release when every donor is busy": (
        snap(2, {"busy": 2, "waiting": 3}, {"waiting": 1}),
        {},
        [],
    ),
    # 3. shares follow demand, with hysteresis, pay-off and cooldown
    "share: a steady mix on two workers keeps one of each (no thrash)": (
        snap(
            2,
            {"idle": 1, "waiting": 8, "head_wait": 0.5, "demand": 9.0},
            {"busy": 1, "waiting": 30, "head_wait": 0.5, "demand": 31.0},
        ),
        {},
        [],
    ),
    "share: the other way round, too": (
        snap(
            2,
            {"busy": 1, "waiting": 8, "head_wait": 0.5, "demand": 9.0},
            {"idle": 1, "waiting": 30, "head_wait": 0.5, "demand": 31.0},
        ),
        {},
        [],
    ),
    "share: converts an idle worker of a kind well above its share": (
        snap(
            4,
            {"idle": 1, "busy": 2, "demand": 2.0},
            {"busy": 1, "waiting": 20, "demand": 21.0},
            below_for=LONG,
        ),
        {},
        [(INTERP, PROC, "share")],
    ),
    "share: not before the need has lasted two starts of the kind": (
        snap(
            4,
            {"idle": 1, "busy": 2, "demand": 2.0},
            {"busy": 1, "waiting": 20, "demand": 21.0},
            below_for={PROC: 2 * S_P - 0.1},
        ),
        {},
        [],
    ),
    "share: not within the hysteresis band": (
        snap(
            4,
            {"idle": 1, "busy": 1, "demand": 6.0},
            {"busy": 2, "waiting": 8, "demand": 10.0},
            below_for=LONG,
        ),
        {},
        [],
    ),
    "share: not within the cooldown of the last conversion": (
        snap(
            4,
            {"idle": 1, "busy": 2, "demand": 2.0},
            {"busy": 1, "waiting": 20, "demand": 21.0},
            since_conversion=0.1,
            below_for=LONG,
        ),
        {},
        [],
    ),
    "share: one conversion per plan": (
        snap(
            6,
            {"idle": 4, "busy": 1, "demand": 1.0, "since_used": 0.0},
            {"busy": 1, "waiting": 40, "demand": 41.0},
            below_for=LONG,
        ),
        {},
        [(INTERP, PROC, "share")],
    ),
    "share: a slot being freed is waited for": (
        snap(
            4,
            {"idle": 1, "busy": 1, "stopping": 1, "demand": 2.0},
            {"busy": 1, "waiting": 20, "demand": 21.0},
            below_for=LONG,
        ),
        {},
        [],
    ),
    # interpreter calls may run in processes (kind="auto", spill): processes first
    "spill: processes wanted by the whole pool take the interpreter's slot": (
        snap(
            2,
            {"idle": 1, "waiting": 5, "demand": 6.0, "spill": PROC},
            {"busy": 1, "waiting": 30, "demand": 31.0},
            below_for=LONG,
        ),
        {},
        [(INTERP, PROC, "share")],
    ),
    "spill: a light mix keeps one worker of each kind": (
        snap(
            2,
            {"idle": 1, "waiting": 1, "demand": 1.0, "spill": PROC},
            {"busy": 1, "waiting": 1, "demand": 1.2},
            below_for=LONG,
        ),
        {},
        [],
    ),
    "spill: interpreter callers with a process running are not starving": (
        snap(
            2,
            {"waiting": 2, "demand": 2.0, "spill": PROC},
            {"busy": 1, "starting": 1, "demand": 1.0},
        ),
        {},
        [],
    ),
    "spill: room goes to the kind below its share": (
        snap(
            4,
            {"waiting": 10, "demand": 10.0, "spill": PROC, "since_used": 0.0},
            {"busy": 2, "waiting": 20, "demand": 22.0},
        ),
        {PROC: 2},
        [],
    ),
    "spill: a caller that must run in an interpreter pins it (a memoryview)": (
        snap(
            2,
            {"waiting": 1, "demand": 1.0},
            {"idle": 1, "busy": 1, "demand": 1.0, "since_used": 0.0},
        ),
        {},
        [(PROC, INTERP, "starving")],
    ),
    # 4. kinds take turns when max_workers is smaller than the kinds in use
    "turn: a freed worker stays while the other kind's wait is short": (
        snap(
            1,
            {"idle": 1, "waiting": 3, "demand": 4.0},
            {"waiting": 1, "head_wait": 0.1},
        ),
        {},
        [],
    ),
    "turn: it goes once the wait covers the two starts": (
        snap(
            1,
            {"idle": 1, "waiting": 3, "demand": 4.0},
            {"waiting": 1, "head_wait": 0.6},
        ),
        {},
        [(INTERP, PROC, "turn")],
    ),
    "turn: at once when nobody waits for the freed worker's kind": (
        snap(1, {"idle": 1, "since_used": 0.0, "demand": 0.5}, {"waiting": 1}),
        {},
        [(INTERP, PROC, "turn")],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_plan(case: str) -> None:
    snapshot, expected_starts, expected_conversions = CASES[case]
    result = plan(snapshot)
    assert starts(result) == expected_starts
    assert list(result.conversions) == expected_conversions


def test_never_the_last_worker_of_a_kind_in_use_without_room() -> None:
    snapshot = Snapshot(
        2,
        {
            INTERP: kind(INTERP, idle=1, since_used=0.05, demand=1.0),
            PROC: kind(PROC, busy=1, demand=2.0),
            "thread": kind("thread", waiting=1, start_cost=0.001, demand=1.0),
        },
    )
    # three kinds in use on two slots: they take turns, the interpreter's idle
    # worker waits for nobody: it goes
    assert plan(snapshot).conversions == ((INTERP, "thread", "turn"),)
    snapshot = Snapshot(
        3,
        {
            INTERP: kind(INTERP, idle=1, since_used=0.05, demand=1.0),
            PROC: kind(PROC, busy=2, waiting=2, demand=4.0),
            "thread": kind("thread", busy=0, waiting=0, since_used=math.inf),
        },
    )
    # the process kind waits, but the interpreter's only worker is kept
    assert plan(snapshot).conversions == ()


def test_a_wait_is_rechecked_when_a_turn_or_a_cooldown_ends() -> None:
    waiting = snap(
        1, {"idle": 1, "waiting": 3, "demand": 4.0}, {"waiting": 1, "head_wait": 0.1}
    )
    assert plan(waiting).recheck == pytest.approx(S_I + S_P - 0.1)
    cooling = CASES["share: not within the cooldown of the last conversion"][0]
    expected = cooldown(cooling.kinds[INTERP], cooling.kinds[PROC]) - 0.1
    assert plan(cooling).recheck == pytest.approx(expected)


def test_undoing_a_conversion_takes_a_shift_of_demand() -> None:
    """After a conversion by share, the same demand never converts back."""
    before = CASES["share: converts an idle worker of a kind well above its share"][0]
    assert plan(before).conversions == ((INTERP, PROC, "share"),)

    # then, with the same demand, the state it leads to (one interpreter, three
    # processes): a freed process stays a process, whoever waits
    def after(i_demand: float) -> Snapshot:
        return snap(
            4,
            {"busy": 1, "waiting": 4, "demand": i_demand},
            {"idle": 1, "busy": 2, "waiting": 15, "demand": 21.0},
            below_for=LONG,
        )

    assert plan(after(2.0)).conversions == ()
    # only a shift of demand undoes it: the interpreters' share must rise by more
    # than the hysteresis band
    assert plan(after(15.0)).conversions == ()
    assert plan(after(30.0)).conversions == ((PROC, INTERP, "share"),)


@pytest.mark.parametrize(
    ("total", "demand", "expected"),
    [
        (2, {INTERP: 1.0, PROC: 30.0}, {INTERP: 1.0, PROC: 1.0}),
        (4, {INTERP: 1.0, PROC: 3.0}, {INTERP: 1.0, PROC: 3.0}),
        (4, {INTERP: 0.0, PROC: 5.0}, {INTERP: 1.0, PROC: 3.0}),
        (6, {INTERP: 2.0, PROC: 4.0}, {INTERP: 2.0, PROC: 4.0}),
        (1, {INTERP: 1.0, PROC: 3.0}, {INTERP: 0.25, PROC: 0.75}),
        (3, {INTERP: 1.0}, {INTERP: 3.0}),
        (3, {}, {}),
    ],
)
def test_shares(
    total: int, demand: dict[str, float], expected: dict[str, float]
) -> None:
    result = shares(total, demand)
    assert result == pytest.approx(expected)
    if demand:
        assert sum(result.values()) == pytest.approx(total)


@pytest.mark.parametrize(
    ("total", "demand", "expected"),
    [
        # processes get what their callers need first: interpreter calls ride along
        (2, {INTERP: 10.0, PROC: 30.0}, {INTERP: 0.0, PROC: 2.0}),
        (4, {INTERP: 10.0, PROC: 1.5}, {INTERP: 2.5, PROC: 1.5}),
        (2, {INTERP: 1.0, PROC: 0.3}, {INTERP: 1.0, PROC: 1.0}),
        (4, {INTERP: 0.0, PROC: 0.5}, {INTERP: 3.0, PROC: 1.0}),
    ],
)
def test_shares_with_a_flexible_kind(
    total: int, demand: dict[str, float], expected: dict[str, float]
) -> None:
    result = shares(total, demand, frozenset({INTERP}))
    assert result == pytest.approx(expected)
    assert sum(result.values()) == pytest.approx(total)


def test_invariants_over_random_snapshots() -> None:
    """Whatever the pool looks like: never over max_workers, never more retired
    than idle, never the last worker of a kind in use while slots allow one each."""
    rng = random.Random(22)
    names = (INTERP, PROC, "thread")
    for _ in range(600):
        max_workers = rng.randint(1, 6)
        kinds: dict[str, Kind] = {}
        left = max_workers
        for name in names[: rng.randint(1, 3)]:
            counts = [rng.randint(0, left) for _ in range(5)]
            while sum(counts) > left:
                counts[rng.randrange(5)] -= 1
                counts = [max(0, c) for c in counts]
            left -= sum(counts)
            idle, busy, starting, stopping, stuck = counts
            kinds[name] = Kind(
                idle=idle,
                busy=busy,
                starting=starting,
                stopping=stopping,
                stuck=stuck,
                waiting=rng.choice((0, 0, 1, 3, 20)),
                head_wait=rng.choice((0.0, 0.01, 0.3, 2.0)),
                demand=rng.choice((0.0, 0.5, 2.0, 10.0)),
                start_cost=rng.choice((0.001, 0.02, 0.5)),
                since_used=rng.choice((0.0, 0.5, 100.0, math.inf)),
                replace=rng.choice((0, 0, 1)),
                spill=rng.choice((None, PROC)) if name == INTERP else None,
            )
        snapshot = Snapshot(
            max_workers,
            kinds,
            reserve=rng.choice((0, 1)),
            can_start=rng.random() < 0.9,
            since_conversion=rng.choice((0.0, 0.2, math.inf)),
            below_for=rng.choice(({}, LONG)),
        )
        result = plan(snapshot)
        live = sum(k.live for k in kinds.values())
        assert live + sum(result.start.values()) <= max_workers, snapshot
        for name, k in kinds.items():
            retired = sum(1 for c in result.conversions if c[0] == name)
            assert retired <= k.idle, snapshot
            used = [n for n, v in kinds.items() if v.in_use]
            elsewhere = k.spill in kinds and kinds[k.spill].live > 0
            if name in used and len(used) <= max_workers and retired:
                # its last worker only if its callers run in another kind
                assert k.live - retired >= 1 or elsewhere, snapshot
        if not snapshot.can_start:
            assert not any(result.start.values())
            assert not result.conversions
        shared = [c for c in result.conversions if c[2] == "share"]
        assert len(shared) <= 1


def test_demand_is_a_time_weighted_average() -> None:
    demand = Demand((INTERP, PROC), window=1.0)
    demand.change(PROC, 4, now=0.0)
    assert demand.average(PROC, 0.0) == 0.0
    assert demand.average(PROC, 1.0) == pytest.approx(4 * (1 - math.exp(-1)))
    assert demand.average(PROC, 50.0) == pytest.approx(4.0)
    demand.change(PROC, -4, now=50.0)
    assert demand.average(PROC, 51.0) == pytest.approx(4 * math.exp(-1))
    assert demand.average(INTERP, 51.0) == 0.0
    demand.change(PROC, -10, now=51.0)  # never below zero callers
    demand.move(PROC, INTERP, now=51.0)
    assert demand.average(PROC, 100.0) == pytest.approx(0.0, abs=1e-9)


def test_the_hysteresis_band_is_less_than_a_worker() -> None:
    # a conversion moves a kind by one worker: the band must be narrower than that,
    # or a kind a whole worker below its share could never get it
    assert 0.5 <= HYSTERESIS < 1.0
