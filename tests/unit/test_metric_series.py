"""Producers cannot grow the number of metric series: 10,000 forged subjects stay a few.

Only :class:`Metrics`'s public methods are used, so the same test shows the old
behaviour (one series per distinct subject) when run against an older tree.
"""

from __future__ import annotations

import random
import string

from csfabric.kernel import Metrics

SUBJECT_METRICS = ("csfabric_events_in", "csfabric_events_out", "csfabric_handler_seconds")
# The bound the labels guarantee is a few hundred per metric (SUBJECT_LABEL_SETS); the
# traffic below can only reach a handful of those.
FEW = 300


def series(metrics: Metrics, name: str) -> set[tuple[tuple[str, str], ...]]:
    """The distinct label sets of one metric (a histogram's buckets are one series)."""
    found: set[tuple[tuple[str, str], ...]] = set()
    for family in metrics.registry.collect():
        if family.name != name:
            continue
        for sample in family.samples:
            found.add(tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le")))
    return found


def forged_subjects(count: int, seed: int = 9) -> list[str]:
    """Distinct subjects as a hostile producer would make them: valid shape, random names."""
    rng = random.Random(seed)
    alphabet = string.ascii_uppercase + string.digits
    shapes = (
        "csfabric.cloudstack.action.{}.CREATE",
        "csfabric.cloudstack.usage.VM.{}",
        "csfabric.cloudstack.alert.ALERT.{}",
        "csfabric.cloudstack.state.{}.Transition",
        "csfabric.lifecycle.{}.created",
        "csfabric.audit.{}",
        "csfabric.{}.x",
        "{}",
    )
    subjects: set[str] = set()
    while len(subjects) < count:
        token = "".join(rng.choices(alphabet, k=12))
        subjects.add(rng.choice(shapes).format(token))
    return sorted(subjects)


def test_ten_thousand_distinct_subjects_make_a_bounded_number_of_series() -> None:
    metrics = Metrics("victim")
    subjects = forged_subjects(10_000)
    for subject in subjects:
        metrics.event_in(subject)
        metrics.event_out(subject)
        metrics.observe_handler(subject, 0.001)
    for name in SUBJECT_METRICS:
        made = len(series(metrics, name))
        assert made <= FEW, f"{name}: {made} series from {len(subjects)} subjects"
    # Nothing was lost: every message is still counted, under "other" where unknown.
    total = sum(
        sample.value
        for family in metrics.registry.collect()
        if family.name == "csfabric_events_in"
        for sample in family.samples
        if sample.name == "csfabric_events_in_total"
    )
    assert total == len(subjects)


def test_dead_letter_reasons_are_capped() -> None:
    metrics = Metrics("victim")
    metrics.dead_letter("EnvelopeError")
    for n in range(1_000):
        metrics.dead_letter(f"GeneratedError{n}")
    metrics.dead_letter("EnvelopeError")  # one seen before the flood stays itself
    reasons = series(metrics, "csfabric_dlq")
    assert len(reasons) <= 40, f"{len(reasons)} dead-letter series"
    text = metrics.render().decode()
    assert 'csfabric_dlq_total{reason="EnvelopeError",service="victim"} 2.0' in text
    assert 'reason="other"' in text
