"""The fault campaign of issue 11 at a small size: SIGKILLs during flush and during SMTP intake,
two instances with a slow relay.  ``bench/faults.py`` runs the same functions at full size and
prints the figures recorded in docs/reliability.md."""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import faults


def test_killed_flushes_lose_nothing_and_resend_at_most_one_per_kill(tmp_path):
    figures = faults.kill_flushes(tmp_path, f"sqlite:///{tmp_path / 'h.db'}", messages=40, kills=3,
                                  rng=random.Random(3))
    assert figures["unsent"] == 0 and figures["delivered"] == 40, figures
    assert figures["extra_copies"] <= figures["kills"], figures


def test_two_instances_with_a_slow_relay_deliver_each_mail_once(tmp_path):
    figures = faults.two_instances(tmp_path, messages=20)
    assert figures["delivered"] == 20 and figures["duplicates"] == 0, figures


def test_killed_run_during_smtp_intake_keeps_every_answered_mail_once(tmp_path):
    figures = faults.kill_run_during_intake(tmp_path, f"sqlite:///{tmp_path / 'h.db'}", mails=15, kills=2,
                                            rng=random.Random(5))
    assert figures["tickets"] == 15 and figures["quarantined"] == 0, figures
