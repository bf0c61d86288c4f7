"""Which workers a pool of several kinds starts and retires: its allocation policy.

One pure function, :func:`plan`, from a :class:`Snapshot` of a pool (its workers of
each kind by state, the callers waiting for each kind and for how long, the demand
for each kind, what a start and a call of each kind cost) to a :class:`Plan` (how
many workers of each kind to start, which idle workers to retire to make room for
another kind). The roster (:mod:`aiointerp._host._measures`) takes a snapshot when its
watcher wakes and when a worker is freed while callers of another kind wait, and
carries the plan out. A freed worker that the plan does not retire goes to the first
caller it can serve (callers are served first come, first served), or idles.

A kind may *spill* to another (:attr:`Kind.spill`): under ``kind="auto"``, a call
that loads in an interpreter runs in a process as well, when no interpreter is free;
a call that needs a process runs nowhere else. The rules, in order:

1. **Room first.** While fewer than ``max_workers`` workers hold a slot, a worker is
   started for each waiting caller that no idle or starting worker will serve: for
   the callers no worker serves at all first, then by how far the kind is below its
   share, then by how long its first caller has waited (a spilling caller gets a
   worker of the kind further below its share). A worker lost for cause
   (interrupted, killed, dead) is replaced, while its kind is in use (the roster
   waits 50 ms before it asks). The first kind's reserve
   (``min_idle``) takes the room left.
2. **No kind starves.** Callers that no worker of the pool can serve take an idle
   worker of another kind (retired to make room for theirs), as long as
   ``max_workers`` allows one worker per kind in use: the last worker of a kind in
   use is never taken, unless its callers spill to a kind that has one. Such a
   caller waits about one call of another kind (until a worker is freed) plus one
   start of its own kind.
3. **Shares follow demand, with hysteresis.** Each kind in use has a *share* of
   ``max_workers`` from its demand (callers waiting or running, averaged over
   :data:`DEMAND_WINDOW`): the kinds whose callers run nowhere else first (their
   demand, at least one worker each), the spilling kinds what is left
   (:func:`shares`). An idle worker of a kind above its share is converted for a
   kind below its share only when all of these hold: both are at least
   :data:`HYSTERESIS` of a worker away from their shares (so two kinds never trade
   a slot back and forth: undoing a conversion takes a shift of demand); the kind
   below its share has been so, continuously, for :func:`persist` seconds (two of
   its starts: a conversion pays only if the need outlasts the start); and no
   conversion happened in the last :func:`cooldown` seconds (conversions are
   rate-limited).
4. **Too few slots for every kind** (``max_workers`` is smaller than the number of
   kinds in use that must have a worker of their own): kinds take turns. A freed
   worker goes to the other kind once the first caller of that kind has waited as
   long as the two starts of a conversion take, so that at least half the time goes
   to calls.

A kind is *in use* while callers wait for it or run, and until
``max(HOLD_MIN, HOLD_STARTS * start cost)`` seconds after its last call ended.
Costs are measured by the roster per kind: an average of recent starts, the
initializer, ``preload`` and the excess of a new worker's first call (the imports
its code makes) included, and of recent calls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "COOLDOWN_MIN",
    "COOLDOWN_STARTS",
    "DEMAND_WINDOW",
    "HOLD_MIN",
    "HOLD_STARTS",
    "HYSTERESIS",
    "PERSIST_STARTS",
    "Kind",
    "Plan",
    "Snapshot",
    "cooldown",
    "persist",
    "plan",
    "shares",
]

#: how far (in workers) a kind must be below its share, and the donor above its
#: own, before an idle worker is converted from one to the other
HYSTERESIS: Final = 0.75
#: a kind must have been below its share this many of its starts before a worker
#: is converted for it (rule 3): a conversion pays only if the need outlasts it
PERSIST_STARTS: Final = 2.0
#: conversions by share (rule 3) are at least this many seconds apart...
COOLDOWN_MIN: Final = 0.25
#: ...and at least this many times the two starts of the last one
COOLDOWN_STARTS: Final = 2.0
#: a kind stays in use this long after its last call ended, at least...
HOLD_MIN: Final = 1.0
#: ...and at least this many of its starts
HOLD_STARTS: Final = 10.0
#: seconds over which demand is averaged (an exponential moving average)
DEMAND_WINDOW: Final = 2.0
#: demand below this counts as none when shares are computed
_EPSILON: Final = 1e-3


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of worker in a :class:`Snapshot`."""

    #: workers waiting for a call (a worker just freed counts here)
    idle: int = 0
    #: workers running a call
    busy: int = 0
    #: workers being started
    starting: int = 0
    #: workers being stopped: they hold their slot until they end (soon)
    stopping: int = 0
    #: workers whose code did not stop when interrupted: they hold their slot
    stuck: int = 0
    #: callers waiting for a worker of this kind
    waiting: int = 0
    #: seconds the first of them has waited
    head_wait: float = 0.0
    #: callers waiting or running, averaged over :data:`DEMAND_WINDOW`
    demand: float = 0.0
    #: seconds a start of this kind takes (measured; initializer, preload and the
    #: imports of a new worker's first call included)
    start_cost: float = 0.0
    #: seconds since a call of this kind last ended (``math.inf``: never)
    since_used: float = math.inf
    #: workers lost for cause (interrupted, killed, dead), not replaced yet
    replace: int = 0
    #: another kind whose workers may serve this kind's callers when none of this
    #: kind is free (interpreter calls run in a process too), or ``None``
    spill: str | None = None

    @property
    def live(self) -> int:
        """Workers of this kind that hold a slot."""
        return self.idle + self.busy + self.starting + self.stopping + self.stuck

    @property
    def in_use(self) -> bool:
        """Callers wait for this kind or run in it, or did very recently."""
        if self.waiting or self.busy:
            return True
        return self.since_used < max(HOLD_MIN, HOLD_STARTS * self.start_cost)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the policy knows of a pool at one moment."""

    max_workers: int
    #: each kind of the pool, in its order (the first keeps the reserve)
    kinds: Mapping[str, Kind]
    #: idle workers of the first kind to keep ready (``min_idle``, or the opening's)
    reserve: int = 0
    #: workers may be started (``False`` while the pool backs off after failures)
    can_start: bool = True
    #: seconds since the last conversion by share (rule 3)
    since_conversion: float = math.inf
    #: for each kind the last plans found below its share (:attr:`Plan.below`),
    #: for how many seconds they have
    below_for: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do now (see :func:`plan`)."""

    #: workers to start, per kind
    start: Mapping[str, int]
    #: idle workers to retire to make room for another kind (a worker just freed
    #: first, then the oldest), one ``(from kind, to kind, rule)`` each; ``rule`` is
    #: ``"starving"``, ``"turn"`` or ``"share"``
    conversions: tuple[tuple[str, str, str], ...] = ()
    #: seconds after which the plan may change with nothing else happening (a
    #: cooldown or a turn ends); ``math.inf``: only an event changes it
    recheck: float = math.inf
    #: the kinds whose callers wait and that are below their share by at least
    #: :data:`HYSTERESIS` (the roster tells the next plans for how long)
    below: frozenset[str] = frozenset()

    def converts(self, kind: str) -> tuple[str, str, str] | None:
        """The first conversion of an idle worker of *kind*, if any."""
        for conversion in self.conversions:
            if conversion[0] == kind:
                return conversion
        return None


def persist(kind: Kind) -> float:
    """Seconds a kind must stay below its share before a conversion for it."""
    return max(COOLDOWN_MIN, PERSIST_STARTS * kind.start_cost)


def cooldown(first: Kind, second: Kind) -> float:
    """Seconds between two conversions by share involving these two kinds."""
    return max(COOLDOWN_MIN, COOLDOWN_STARTS * (first.start_cost + second.start_cost))


def shares(
    total: int, demand: Mapping[str, float], flexible: frozenset[str] = frozenset()
) -> dict[str, float]:
    """Each kind's share of *total* workers, from its *demand* (in workers).

    Kinds whose callers can run nowhere else come first: each gets its demand, at
    least one worker, all of them together at most *total* (in proportion to their
    demand, when they want more). The *flexible* kinds (whose callers may also run
    in a worker of another kind) share what is left, in proportion to their demand,
    at least one worker each when what is left allows. The shares add up to *total*.
    """
    pinned = {name: value for name, value in demand.items() if name not in flexible}
    loose = {name: value for name, value in demand.items() if name in flexible}
    wanted = sum(max(1.0, value) for value in pinned.values())
    if not loose or wanted >= total:
        result = _split(total, pinned or loose)
        return {**dict.fromkeys(demand, 0.0), **result}
    result = {name: max(1.0, value) for name, value in pinned.items()}
    result.update(_split(total - wanted, loose))
    return result


def _split(total: float, demand: Mapping[str, float]) -> dict[str, float]:
    """*total* in proportion to *demand*, at least one each when *total* allows."""
    if not demand:
        return {}
    floor = 1.0 if len(demand) <= total else 0.0
    fixed: dict[str, float] = {}
    free = dict(demand)
    while free:
        rest = total - sum(fixed.values())
        weight = sum(max(value, _EPSILON) for value in free.values())
        share = {
            name: rest * max(value, _EPSILON) / weight for name, value in free.items()
        }
        low = [name for name, value in share.items() if value < floor]
        if not low:
            fixed.update(share)
            break
        for name in low:
            fixed[name] = floor
            del free[name]
    return fixed


def plan(snapshot: Snapshot) -> Plan:
    """What a pool should start and retire now (see the module documentation)."""
    kinds = snapshot.kinds
    names = list(kinds)
    live = {name: kinds[name].live for name in names}
    used = [name for name in names if kinds[name].in_use]
    # a kind may spill to another only if the pool runs that one
    spill = {
        name: k.spill if k.spill in kinds and k.spill != name else None
        for name, k in kinds.items()
    }
    flexible = frozenset(name for name in used if spill[name] is not None)
    share = shares(
        snapshot.max_workers, {name: kinds[name].demand for name in used}, flexible
    )
    # kinds that must have a worker of their own: their callers run nowhere else
    required = [name for name in used if spill[name] is None or spill[name] not in used]
    scarce = len(required) > snapshot.max_workers

    def free(name: str) -> int:  # workers that will serve a caller of this kind
        k = kinds[name]
        other = spill[name]
        if other is None:
            return k.idle + k.starting
        o = kinds[other]  # those the other kind's own callers leave
        return k.idle + k.starting + max(0, o.idle + o.starting - o.waiting)

    # callers that no idle or starting worker will serve
    need = {name: max(0, kinds[name].waiting - free(name)) for name in names}
    start = dict.fromkeys(names, 0)
    room = snapshot.max_workers - sum(live.values())

    def below(name: str) -> float:  # how far below its share, counting starts
        return share.get(name, 0.0) - live[name] - start[name]

    def alone(name: str) -> bool:  # no worker serves its callers at all
        other = spill[name]
        return live[name] + start[name] == 0 and (
            other is None or live[other] + start[other] == 0
        )

    def urgency(name: str) -> tuple[bool, float, float]:
        # no worker at all first, then the furthest below its share, then the
        # longest waiting
        return (not alone(name), -below(name), -kinds[name].head_wait)

    # 1. room: a start for each caller nothing serves, then replacements, the reserve
    if snapshot.can_start and room > 0:
        for name in sorted((n for n in names if need[n]), key=urgency):
            count = min(need[name], room)
            # a flexible kind's callers get a worker of the kind below its share
            other = spill[name]
            target = other if other is not None and below(other) > below(name) else name
            start[target] += count
            need[name] -= count
            room -= count
            if not room:
                break
        for name in names:
            missing = kinds[name].replace - start[name]
            if room and missing > 0 and name in used:
                count = min(missing, room)
                start[name] += count
                room -= count
        first = names[0]
        reserve = snapshot.reserve - kinds[first].idle - kinds[first].starting
        reserve -= start[first]
        if room and reserve > 0 and not any(need.values()):
            start[first] += min(reserve, room)
            room -= min(reserve, room)

    # 2-4. no room for some callers: convert idle workers of other kinds
    conversions: list[tuple[str, str, str]] = []
    recheck = math.inf
    # slots being freed (workers stopping) go to the neediest kind when they are
    pending = sum(kinds[name].stopping for name in names)
    idle = {name: kinds[name].idle for name in names}
    shared = False  # one conversion by share per plan: they are rate-limited
    below_share: set[str] = set()
    for name in sorted((n for n in names if need[n]), key=urgency):
        if not snapshot.can_start:
            break
        # the kind to make room for: a flexible kind's callers may get the other
        other = spill[name]
        target = other if other is not None and below(other) > below(name) else name
        wanted = kinds[target]
        if share.get(target, 0.0) - live[target] >= HYSTERESIS:
            below_share.add(target)
        if pending:
            pending -= min(pending, need[name])
            continue
        donor = _donor(target, idle, live, share, used, scarce, spill)
        if donor is None:
            continue
        giver = kinds[donor]
        if alone(name) and not scarce:
            rule = "starving"
        elif scarce:
            turn = giver.start_cost + wanted.start_cost
            if giver.waiting and kinds[name].head_wait < turn:
                recheck = min(recheck, turn - kinds[name].head_wait)
                continue
            rule = "turn"
        else:
            if shared:
                continue
            wait = cooldown(giver, wanted) - snapshot.since_conversion
            if wait > 0:
                recheck = min(recheck, wait)
                continue
            if (
                share.get(target, 0.0) - live[target] < HYSTERESIS
                or live[donor] - share.get(donor, 0.0) < HYSTERESIS
            ):
                continue
            wait = persist(wanted) - snapshot.below_for.get(target, 0.0)
            if wait > 0:  # not for long enough: it may not outlast the start
                recheck = min(recheck, wait)
                continue
            rule = "share"
            shared = True
        idle[donor] -= 1
        live[donor] -= 1
        live[target] += 1  # the slot is its own once freed
        conversions.append((donor, target, rule))
    return Plan(start, tuple(conversions), recheck, frozenset(below_share))


def _donor(
    name: str,
    idle: Mapping[str, int],
    live: Mapping[str, int],
    share: Mapping[str, float],
    used: list[str],
    scarce: bool,
    spill: Mapping[str, str | None],
) -> str | None:
    """The kind whose idle worker makes room for *name*, or ``None``.

    Never the last worker of a kind in use whose callers can run nowhere else,
    unless kinds take turns (``scarce``); the kind furthest above its share first.
    """
    best: str | None = None
    best_surplus = -math.inf
    for other, count in idle.items():
        if other == name or count <= 0:
            continue
        if not scarce and other in used and live[other] < 2:
            # its last worker: only if its callers run in the kind it makes room
            # for, or in another that has a worker
            elsewhere = spill[other]
            if elsewhere is None or (elsewhere != name and not live[elsewhere]):
                continue
        surplus = live[other] - share.get(other, 0.0)
        if surplus > best_surplus:
            best, best_surplus = other, surplus
    return best
