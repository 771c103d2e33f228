"""Several OS processes racing on one embedded store: one winner, a ``Conflict`` for each of
the others, never a spurious ``Unavailable``; each queued message handed to one receiver.

Short in CI (a few seconds each); ``pytest --long`` (or ``OVERCAST_LONG=1``) runs ten
times the rounds. The workers are in contention_support.py (spawned processes import them).
"""

from __future__ import annotations

import multiprocessing
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from contention_support import (
    files_worker,
    kv_worker,
    long_profile,
    queue_first_use_worker,
    queue_receiver,
    queue_sender,
)

from overcast.providers.local.files import FileBlobStore

PROCESSES = 4
SCALE = 10 if long_profile() else 1
#: The outcome every racer but the winner must end in, per kind of race.
LOSERS = {"if_absent": "conflict", "if_version": "conflict", "delete_if_version": "conflict", "if_etag": "conflict"}
LOSERS["delete"] = "lost"
#: Calls that race with nobody on their own key: each must succeed.
SOLO = ("own", "own_delete", "whole")


def _race(target: Any, args: tuple[Any, ...], processes: int = PROCESSES) -> dict[tuple[int, str], list[str]]:
    """Run ``target(*args, index, ..., barrier, results)`` in ``processes`` spawned processes;
    return every outcome reported, by (round, race)."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(args[0], i, *args[1:], barrier, results)) for i in range(processes)]
    for proc in procs:
        proc.start()
    outcomes: dict[tuple[int, str], list[str]] = defaultdict(list)
    finished = 0
    try:
        while finished < processes:
            report = results.get(timeout=300)
            if report is None:
                finished += 1
            else:
                round_, race, _, what = report
                outcomes[(round_, race)].append(what)
    finally:
        for proc in procs:
            proc.join(30)
            if proc.exitcode is None:
                proc.kill()
    assert [proc.exitcode for proc in procs] == [0] * processes
    return outcomes


def _bad_rounds(outcomes: dict[tuple[int, str], list[str]], processes: int = PROCESSES) -> list[str]:
    """Every race that had not exactly one winner and losers that lost cleanly."""
    bad = []
    for (round_, race), seen in sorted(outcomes.items()):
        if race in SOLO:
            ok = seen == ["won"] * len(seen)
        else:
            ok = len(seen) == processes and seen.count("won") == 1 and seen.count(LOSERS[race]) == processes - 1
        if not ok:
            bad.append(f"round {round_} {race}: {seen}")
    return bad


def _report(bad: list[str], outcomes: dict[tuple[int, str], list[str]]) -> str:
    errors = Counter(what.split(":")[1].strip() for seen in outcomes.values() for what in seen if what[:5] == "error")
    return f"{len(bad)} of {len(outcomes)} races went wrong ({dict(errors)}):\n" + "\n".join(bad[:20])


def test_kv_conditional_puts_in_processes_have_one_winner(tmp_path: Path) -> None:
    outcomes = _race(kv_worker, (str(tmp_path / "kv"), 50 * SCALE, False))
    bad = _bad_rounds(outcomes)
    assert not bad, _report(bad, outcomes)
    assert len(outcomes) == 3 * 50 * SCALE


def test_kv_first_use_of_a_new_file_in_processes_has_one_winner(tmp_path: Path) -> None:
    """Each round a new file: creating it, switching it to WAL and making the table race too."""
    outcomes = _race(kv_worker, (str(tmp_path / "kv"), 20 * SCALE, True))
    bad = _bad_rounds(outcomes)
    assert not bad, _report(bad, outcomes)


def _run_queue(url: str, receivers: int, senders: int, per_sender: int) -> tuple[list[Any], set[str]]:
    ctx = multiprocessing.get_context("spawn")
    start, done_sending, results = ctx.Barrier(receivers + senders), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=queue_receiver, args=(url, i, done_sending, start, results)) for i in range(receivers)]
    procs += [
        ctx.Process(target=queue_sender, args=(url, receivers + i, per_sender, start, results)) for i in range(senders)
    ]
    for proc in procs:
        proc.start()
    deliveries, sent, errors = [], set(), []
    finished = senders_done = 0
    try:
        while finished < len(procs):
            kind, what, index, at = results.get(timeout=300)
            if kind == "done":
                finished += 1
                senders_done += what >= receivers
                if senders_done == senders:
                    done_sending.set()
            elif kind == "sent":
                sent.add(what)
            elif kind == "delivery":
                deliveries.append((what, index, at))
            else:
                errors.append(f"process {what}: {index}")
    finally:
        for proc in procs:
            proc.join(30)
            if proc.exitcode is None:
                proc.kill()
    assert not errors, f"{len(errors)} calls failed: {errors[:10]}"
    assert [proc.exitcode for proc in procs] == [0] * len(procs)
    return deliveries, sent


def test_queue_receivers_in_processes_each_get_a_message_once(tmp_path: Path) -> None:
    """Receivers and senders start together on a new file; every message is acked within its
    visibility timeout, so each must be delivered exactly once, to one receiver."""
    deliveries, sent = _run_queue(f"sqlite:///{tmp_path / 'q.db'}", PROCESSES, 2, 150 * SCALE)
    counts = Counter(message_id for message_id, _, _ in deliveries)
    twice = {message_id: n for message_id, n in counts.items() if n > 1}
    assert not twice, f"{len(twice)} messages were delivered more than once: {list(twice.items())[:10]}"
    assert len(sent) == 2 * 150 * SCALE
    assert set(counts) == sent, f"lost: {sorted(sent - set(counts))[:10]}"
    assert len({index for _, index, _ in deliveries}) > 1  # they really shared the work


def test_queue_first_use_of_a_new_file_in_processes(tmp_path: Path) -> None:
    """Each round a new file, four processes each send one message and claim one: every send
    succeeds, and the four claims take the four messages, one each."""
    outcomes = _race(queue_first_use_worker, (str(tmp_path / "q"), 20 * SCALE))
    bad = [f"round {r} send: {seen}" for (r, race), seen in outcomes.items() if race == "send" and seen != ["won"] * 4]
    for (r, race), seen in sorted(outcomes.items()):
        if race == "receive" and (len(set(seen)) != PROCESSES or not all(s.startswith("delivered:") for s in seen)):
            bad.append(f"round {r} receive: {seen}")
    assert not bad, _report(bad, outcomes)
    assert len(outcomes) == 2 * 20 * SCALE


def test_files_conditional_puts_and_deletes_in_processes_have_one_winner(tmp_path: Path) -> None:
    outcomes = _race(files_worker, (str(tmp_path / "bucket"), 40 * SCALE))
    bad = _bad_rounds(outcomes)
    assert not bad, _report(bad, outcomes)
    # A write whose folder another key's delete removed made it again: no key was pushed out
    # of the tree into .overcast/keys, and every delete left nothing behind.
    assert not list((tmp_path / "bucket" / ".overcast" / "keys").glob("*"))
    assert FileBlobStore(f"file://{tmp_path / 'bucket'}").sync.page().objects == []
    assert {race for _, race in outcomes} == {*LOSERS.keys() - {"if_version", "delete_if_version"}, *SOLO}


def test_the_checks_catch_a_race_with_two_winners_an_error_or_none() -> None:
    """The checker itself: two winners, a winner beside an error, or no winner is a bad race."""
    two = {(0, "if_version"): ["won", "won"]}
    error = {(0, "if_absent"): ["won", "error: Unavailable: database is locked"]}
    none = {(0, "delete"): ["lost", "lost"]}
    assert [len(_bad_rounds(outcomes, 2)) for outcomes in (two, error, none)] == [1, 1, 1]
    assert _bad_rounds({(0, "if_etag"): ["conflict", "won"], (0, "own"): ["won", "won"]}, 2) == []
    assert len(_bad_rounds({(0, "own"): ["won", "lost"]}, 2)) == 1
