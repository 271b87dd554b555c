"""Process groups: names, matchers, the accounting of exited processes, and
the ranking that keeps counters monotonic and new series within budget."""

from __future__ import annotations

import math
import random

import pytest

from hostagent.collectors.base import OptionError
from hostagent.collectors.procgroups import (
    Accountant,
    GroupRule,
    base_name,
    check_group_names,
    group_name,
    label_safe,
    parse_matchers,
)
from hostagent.collectors.proctable import Proc
from hostagent.collectors.topgroups import BURST, DWELL, TopGroups

HZ = 100

# --------------------------------------------------------------------------
# Names


@pytest.mark.parametrize(
    "comm, kernel, group",
    [
        ("kworker/u8:2-events_unbound", True, "kworker"),
        ("kworker/u8:2-writeback", True, "kworker"),
        ("kworker/R-rcu_gp", True, "kworker"),
        ("ksoftirqd/1", True, "ksoftirqd"),
        ("migration/0", True, "migration"),
        ("irq/24-ACPI:Ged", True, "irq"),
        ("jbd2/vda1-8", True, "jbd2"),
        ("kswapd0", True, "kswapd"),
        ("kdamond.0", True, "kdamond"),
        ("scsi_eh_12", True, "scsi_eh"),
        ("python3", False, "python3"),  # a user process keeps its digits
        ("postgres", False, "postgres"),
        ("kworker/u8:2-events_unbound", False, "kworker"),  # a user process named like one folds too
    ],
)
def test_default_group_names(comm, kernel, group):
    assert GroupRule()(comm, kernel) == group


def test_renamed_worker_stays_in_one_group():
    rule = GroupRule()
    names = {rule(f"kworker/u{n}:{m}-{task}", True) for n in (4, 8) for m in range(40) for task in ("events_unbound", "writeback", "flush-8:0")}
    assert names == {"kworker"}


def test_label_safe_names_are_bounded_and_never_other():
    assert label_safe("Web Content") == "Web_Content"
    assert label_safe("(sd-pam)") == "sd-pam"
    assert label_safe("naïve\n\"quote\"\\") == "na_ve_quote"
    assert label_safe("x" * 100) == "x" * 32
    assert label_safe("   ") == "unknown" and label_safe("") == "unknown"
    assert group_name("other") == "other_"
    assert base_name("", False) == ""
    for raw in ("a/b", "\x00\x01", "😀" * 20, "a" * 15 + "/" + "b"):
        name = GroupRule()(raw, False)
        assert name and len(name) <= 32 and all(c.isalnum() and c.isascii() or c in "_.:@+-" for c in name), name


def test_matchers_name_groups_in_order():
    rule = GroupRule("comm", parse_matchers([
        {"name": "web", "exe": "^(nginx|php-fpm.*)$"},
        {"name": "{user}-java", "comm": "^java$"},
        {"name": "batch", "user": "^batch$", "comm": "^python"},
    ]))
    assert rule.needs_exe and rule.needs_user
    assert rule("nginx", False, "nginx", "www-data") == "web"
    assert rule("php-fpm8.2", False, "php-fpm8.2", "www-data") == "web"
    assert rule("java", False, "java", "kafka") == "kafka-java"
    assert rule("python3", False, "python3.11", "batch") == "batch"
    assert rule("python3", False, "python3.11", "alice") == "python3"  # every given field must match
    assert rule("java", False, "java", "we ird") == "we_ird-java"  # rendered names are made safe


def test_group_by_exe_and_user():
    assert GroupRule("exe")("Web Content", False, "firefox-esr", "alice") == "firefox-esr"
    assert GroupRule("exe")("kworker/0:1", True, "", "root") == "kworker"  # kernel threads have no executable
    assert GroupRule("user")("bash", False, "bash", "alice") == "alice"
    assert not GroupRule().needs_exe and not GroupRule().needs_user


@pytest.mark.parametrize(
    "value, message",
    [
        ("web", "must be a list of matchers"),
        (["web"], "entry 1: must be a mapping"),
        ([{"comm": "x"}], "entry 1: needs a name"),
        ([{"name": "web"}], "entry 1: needs at least one of comm, exe or user"),
        ([{"name": "web", "cmdline": "x"}], "entry 1: unknown key 'cmdline'"),
        ([{"name": "web", "comm": "("}], "entry 1: comm is not a valid regular expression"),
        ([{"name": "web", "comm": ""}], "entry 1: comm must be a regular expression string"),
        ([{"name": "ok", "comm": "a"}, {"name": "my web", "comm": "b"}], "entry 2: name 'my web' is not label-safe"),
        ([{"name": "other", "comm": "a"}], "is not label-safe"),
        ([{"name": "{pid}", "comm": "a"}], "only {comm}, {exe} and {user} exist"),
    ],
)
def test_bad_matchers_are_refused_with_the_reason(value, message):
    with pytest.raises(OptionError, match=message.replace("(", r"\(").replace("{", r"\{").replace("}", r"\}")):
        parse_matchers(value)


def test_pinned_group_names_are_checked():
    assert check_group_names(["sshd", "chronyd"]) == ["sshd", "chronyd"]
    assert check_group_names(None) is None
    for bad in ("sshd", ["ssh d"], ["other"], [1]):
        with pytest.raises(OptionError):
            check_group_names(bad)


# --------------------------------------------------------------------------
# Accounting


def proc(pid, comm="p", *, ppid=1, ut=0, st=0, cut=0, cst=0, start=100, rb=0, wb=0):
    return Proc(pid, comm, "S", ppid, False, ut, st, cut, cst, 1, start, 4096, 0, rb, wb, 3)


def run(acct, procs, elapsed=10.0, uptime=1000.0):
    rule = GroupRule()
    deltas, cores = acct.account(procs, [rule(p.comm, False) for p in procs], elapsed, uptime)
    return {g: [round(x, 6) for x in d] for g, d in deltas.items()}, cores


def test_first_run_counts_each_process_from_its_start_without_children():
    acct = Accountant(HZ)
    deltas, rates = run(acct, [proc(10, "a", ut=500, st=100, cut=9999, rb=10, wb=20), proc(11, "a", ut=100, start=90000)])
    assert deltas == {"a": [6.0, 1.0, 10.0, 20.0]}
    # Cores over each process's life: 6 s in 999 s, 1 s in 100 s.
    assert rates[10] == pytest.approx(6.0 / 999)
    assert rates[11] == pytest.approx(1.0 / 100)


def test_rises_between_runs_and_a_reused_pid_is_a_new_process():
    acct = Accountant(HZ)
    run(acct, [proc(10, "a", ut=500, rb=100)])
    deltas, rates = run(acct, [proc(10, "a", ut=700, st=50, rb=150)], elapsed=5.0)
    assert deltas == {"a": [2.0, 0.5, 50.0, 0.0]}
    assert rates[10] == pytest.approx(0.5)  # 2.5 s in 5 s
    # Same pid, later start: another process, all of its CPU is new.
    deltas, _ = run(acct, [proc(10, "b", ut=30, start=99000)])
    assert deltas == {"b": [0.3, 0.0, 0.0, 0.0]}


def test_counters_going_backwards_in_proc_add_nothing():
    acct = Accountant(HZ)
    run(acct, [proc(10, "a", ut=500, rb=100)])
    deltas, _ = run(acct, [proc(10, "a", ut=400, rb=None)])
    assert deltas == {"a": [0.0, 0.0, 0.0, 0.0]}


def test_child_never_seen_is_counted_to_the_reaping_parent():
    acct = Accountant(HZ)
    run(acct, [proc(50, "cron", ut=10)])
    # cron ran and reaped a 3-second job between two runs.
    deltas, _ = run(acct, [proc(50, "cron", ut=10, cut=250, cst=50)])
    assert deltas == {"cron": [2.5, 0.5, 0.0, 0.0]}


def test_child_seen_then_exited_gets_what_it_used_after_its_last_sighting():
    acct = Accountant(HZ)
    run(acct, [proc(50, "sh", ut=10), proc(60, "hog", ppid=50, ut=100, start=99500)], uptime=1000.0)
    deltas, _ = run(acct, [proc(50, "sh", ut=10), proc(60, "hog", ppid=50, ut=1100, start=99500)])
    assert deltas["hog"] == [10.0, 0.0, 0.0, 0.0]  # one core over the 10 s
    # The hog ran on for 8 s more and exited; sh reaped it: 1 + 10 + 8 = 19 s.
    deltas, _ = run(acct, [proc(50, "sh", ut=10, cut=1900)])
    assert deltas == {"sh": [0.0, 0.0, 0.0, 0.0], "hog": [8.0, 0.0, 0.0, 0.0]}


def test_remainder_beyond_the_vanished_childs_pace_goes_to_the_parent():
    acct = Accountant(HZ)
    run(acct, [proc(50, "sh"), proc(60, "slow", ppid=50, ut=10, start=99000)], uptime=1000.0)
    run(acct, [proc(50, "sh"), proc(60, "slow", ppid=50, ut=20, start=99000)])  # 0.1 s in 10 s: 0.01 cores
    # The rise holds 0.1 s more of "slow" and 5 s of children never seen.
    deltas, _ = run(acct, [proc(50, "sh", cut=530)])
    assert deltas["slow"][0] == pytest.approx(0.1)
    assert deltas["sh"][0] == pytest.approx(5.0)
    assert sum(d[0] for d in deltas.values()) == pytest.approx(5.1)


def test_nested_exits_are_not_counted_twice():
    """A shell and the pipeline it reaped vanish in one interval: the
    grandparent's rise holds them all, and what was seen counts once."""
    acct = Accountant(HZ)
    run(acct, [proc(1, "init"), proc(40, "cron"), proc(50, "sh", ppid=40, ut=10, start=99000), proc(60, "sort", ppid=50, ut=300, start=99000)], uptime=1000.0)
    # sort used 1 s more, sh reaped it; cron reaped sh: cron's rise is sh's total.
    deltas, _ = run(acct, [proc(1, "init"), proc(40, "cron", cut=410)])
    total = sum(d[0] for d in deltas.values())
    assert total == pytest.approx(1.0)  # only the unseen second
    assert deltas.get("init", [0])[0] == 0


def test_orphans_reaped_by_init_are_not_counted_twice():
    acct = Accountant(HZ)
    run(acct, [proc(1, "init"), proc(40, "cron"), proc(50, "daemon", ppid=40, ut=300, start=99000)], uptime=1000.0)
    # daemon was orphaned and init reaped it (cron's own children time did not move).
    deltas, _ = run(acct, [proc(1, "init", cut=350), proc(40, "cron")])
    assert sum(d[0] for d in deltas.values()) == pytest.approx(0.5)
    assert deltas["daemon"][0] == pytest.approx(0.5)  # at its last pace it could have used that much


def test_orphans_reaped_by_a_subreaper_are_not_counted_twice():
    """A container's init reaps what the shell below it did not: the excess
    over the shell's rise explains the init's rise."""
    acct = Accountant(HZ)
    procs = [proc(1, "init"), proc(300, "tini"), proc(305, "sh", ppid=300), proc(310, "app", ppid=305, ut=100, start=99000), proc(320, "worker", ppid=310, ut=200, start=99000)]
    run(acct, procs, uptime=1000.0)
    # app exited (sh reaped it, 1 s + 0.5 s more); worker, orphaned, ran 0.5 s more and tini reaped it.
    deltas, _ = run(acct, [proc(1, "init"), proc(300, "tini", cut=250), proc(305, "sh", ppid=300, cut=150)])
    assert sum(d[0] for d in deltas.values()) == pytest.approx(1.0)
    assert deltas["app"][0] == pytest.approx(0.5) and deltas["worker"][0] == pytest.approx(0.5)


def test_a_new_process_brings_its_reaped_childrens_time():
    acct = Accountant(HZ)
    run(acct, [proc(50, "cron")])
    deltas, _ = run(acct, [proc(50, "cron"), proc(70, "make", ppid=50, ut=10, cut=900, start=99900)])
    assert deltas["make"] == [9.1, 0.0, 0.0, 0.0]


# --------------------------------------------------------------------------
# Ranking and counters


def top(max_named=3, per_hour=15.0, **kw):
    return TopGroups(max_named, per_hour, 2, **kw)


def test_first_run_names_the_biggest_and_sums_the_rest_into_other():
    t = top(2)
    r = t.update({"a": [1, 0], "b": [2, 0], "c": [3, 0], "d": [4, 0]}, {"a": 100, "b": 10, "c": 1, "d": 5000}, 0.0)
    assert r.named == ("a", "d")
    assert r.counters == {"a": (1, 0), "d": (4, 0)}
    assert r.other == (5, 0) and r.in_other == ("b", "c")


def test_counters_never_decrease_when_keys_move_in_and_out_of_other():
    """Random workloads, keys appearing and vanishing: every exported series
    only rises, and the rises add up to everything used."""
    rng = random.Random(7)
    t = TopGroups(5, 3600.0, 2)
    last = {}
    used = 0.0
    exported_rise = 0.0
    now = 0.0
    for step in range(400):
        keys = [f"k{i}" for i in rng.sample(range(20), rng.randint(3, 15))]
        deltas = {k: [rng.random() * (10 if k in ("k3", "k7") and step % 50 < 25 else 1), rng.random()] for k in keys}
        used += sum(sum(d) for d in deltas.values()) if step else 0.0
        r = t.update(deltas, {k: rng.random() * 100 for k in keys}, now)
        series = {("other",): r.other, **{(k,): r.counters[k] for k in r.named}}
        for key, values in series.items():
            if key in last and step:
                for before, after in zip(last[key], values):
                    assert after >= before - 1e-9, (step, key, before, after)
                exported_rise += sum(values) - sum(last[key])
            last[key] = values
        now += 30.0
        assert len(r.named) <= 5
    # What is held back for a newly named key's first run is at most one run's worth.
    assert exported_rise == pytest.approx(used, rel=0.05)


def test_hysteresis_keeps_a_named_key_against_a_slightly_busier_one():
    t = top(2)
    now = 0.0
    t.update({"a": [10, 0], "b": [10, 0], "c": [0, 0]}, {"a": 1, "b": 1, "c": 1}, now)
    for _ in range(40):  # c is 1.5 times busier than b for 20 minutes: no swap
        now += 30
        r = t.update({"a": [30, 0], "b": [20, 0], "c": [30, 0]}, {"a": 0, "b": 0, "c": 0}, now)
        assert r.named == ("a", "b")
    for _ in range(20):  # c is ten times busier: it takes b's place
        now += 30
        r = t.update({"a": [30, 0], "b": [3, 0], "c": [30, 0]}, {"a": 0, "b": 0, "c": 0}, now)
    assert r.named == ("a", "c")


def test_a_new_key_waits_out_the_dwell_time_of_the_named():
    t = top(1)
    t.update({"a": [1, 0]}, {"a": 1}, 0.0)
    r = t.update({"a": [0, 0], "b": [100, 0]}, {"a": 0, "b": 0}, 60.0)
    assert r.named == ("a",)
    r = t.update({"a": [0, 0], "b": [100, 0]}, {"a": 0, "b": 0}, DWELL + 1)
    assert r.named == ("b",)


def test_new_names_per_hour_are_budgeted():
    t = TopGroups(1000, 6.0, 2)
    t.update({"base": [1, 0]}, {"base": 1}, 0.0)
    named_at = []
    now = 0.0
    for step in range(240):  # two hours, a new busy key every 30 s
        now += 30.0
        key = f"new{step}"
        r = t.update({key: [1, 0]}, {key: 1.0, "base": 1.0}, now)
        if key in r.named:
            named_at.append(now)
    assert len(named_at) <= BURST + 6 * 2
    assert len(named_at) >= 6 * 2  # the budget is used, not starved


def test_first_run_of_a_newly_named_key_shows_at_its_second():
    t = top(3)
    t.update({"a": [1, 0]}, {"a": 1}, 0.0)
    r = t.update({"a": [1, 0], "b": [5, 0]}, {"a": 1, "b": 1}, 30.0)
    assert r.counters["b"] == (0, 0) and r.other == (0, 0)
    r = t.update({"a": [1, 0], "b": [1, 0]}, {"a": 1, "b": 1}, 60.0)
    assert r.counters["b"] == (6, 0)


def test_absent_keys_stay_named_unless_told_otherwise():
    t = top(3)
    t.update({"a": [1, 0], "b": [1, 0]}, {"a": 1, "b": 1}, 0.0)
    r = t.update({"a": [1, 0]}, {"a": 1}, 30.0)
    assert r.named == ("a", "b")
    gone = top(3, keep_absent=0.0)
    gone.update({"a": [1, 0], "b": [1, 0]}, {"a": 1, "b": 1}, 0.0)
    assert gone.update({"a": [1, 0]}, {"a": 1}, 30.0).named == ("a",)


def test_pinned_keys_are_always_named():
    t = top(1, pinned=["sshd"])
    r = t.update({"a": [100, 0]}, {"a": 1000}, 0.0)
    assert r.named == ("sshd",) and r.counters["sshd"] == (0, 0)
    r = t.update({"a": [100, 0]}, {"a": 1000}, 3600.0)
    assert "sshd" in r.named


def test_state_stays_bounded_under_endless_new_keys():
    t = top(5, per_hour=0.0)
    for step in range(3000):
        t.update({f"x{step}": [1, 0]}, {f"x{step}": 1}, step * 30.0)
    assert len(t._keys) <= 10 * 5 + 5
    assert math.isfinite(t.update({}, {}, 3000 * 30.0).other[0])
