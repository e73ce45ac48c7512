"""Failure detectors, NoExecute eviction rules, zone disruption and the
failover timing contract: pure logic on hand-made values."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.controllers.failure_detector import FixedTimeout, PhiAccrual, make_detector
from corral.controllers.taints import (
    NOT_READY,
    UNREACHABLE,
    eviction_delay,
    same_taints,
    taint,
    with_managed,
)
from corral.controllers.zone_disruption import (
    FULL,
    NORMAL,
    PARTIAL,
    DisruptionPolicy,
    TokenBucket,
    rate_for,
    zone_of,
    zone_states,
)
from corral.failover import DEFAULT_TIMING, MAX_DRIFT, FailoverTiming, safe_grace

# -- detectors -----------------------------------------------------------------


def test_fixed_timeout_expires_after_silence_and_recovers() -> None:
    det = FixedTimeout(2.5)
    det.heartbeat("n", 0.0)
    assert not det.expired("n", 2.5)
    assert det.expired("n", 2.51)
    det.heartbeat("n", 3.0)
    assert not det.expired("n", 3.1)
    assert not det.expired("unknown", 100.0)  # never heard from: no contract


def test_shift_forgives_time_the_observer_was_not_looking() -> None:
    det = FixedTimeout(2.0)
    det.heartbeat("n", 0.0)
    det.shift(5.0)
    assert not det.expired("n", 6.0)
    assert det.expired("n", 7.1)


def test_phi_stretches_for_irregular_nodes_but_never_below_the_floor() -> None:
    det = PhiAccrual(min_timeout=2.5, max_timeout=10.0)
    t = 0.0
    for _ in range(50):
        det.heartbeat("steady", t)
        t += 0.5
    assert det.timeout("steady") == 2.5
    t = 0.0
    for i in range(50):
        det.heartbeat("jumpy", t)
        t += 0.2 if i % 2 else 1.6
    assert 2.5 < det.timeout("jumpy") <= 10.0
    assert det.phi("steady", t + 10) > det.threshold


def test_phi_does_not_learn_from_an_outage() -> None:
    det = PhiAccrual(min_timeout=2.5)
    for i in range(20):
        det.heartbeat("n", i * 0.5)
    before = det.timeout("n")
    assert det.expired("n", 9.5 + 30)
    det.heartbeat("n", 9.5 + 31)  # back after a 31 s outage
    assert det.timeout("n") == before


def test_make_detector_names_the_bad_kind() -> None:
    with pytest.raises(ValueError, match="detector"):
        make_detector("psychic", 1.0, 2.0)
    with pytest.raises(ValueError, match="timeout"):
        FixedTimeout(0)


# -- taints --------------------------------------------------------------------

DEFAULTS = [
    {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 0},
    {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 0},
]


def pod(*tolerations: dict) -> dict:
    return {"spec": {"tolerations": list(tolerations)}}


def test_eviction_delay_follows_the_taint_manager() -> None:
    unreachable = [taint(UNREACHABLE, "NoExecute", "2026-01-01T00:00:00Z")]
    assert eviction_delay(pod(), unreachable) == 0.0
    assert eviction_delay(pod(*DEFAULTS), unreachable) == 0.0
    waits = {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}
    assert eviction_delay(pod(waits), unreachable) == 60.0
    forever = {"operator": "Exists"}
    assert eviction_delay(pod(forever), unreachable) == math.inf
    # Two taints, one tolerated forever, one not at all: evicted now.
    both = [*unreachable, {"key": "other", "value": "x", "effect": "NoExecute"}]
    assert eviction_delay(pod(waits), both) == 0.0
    # The smallest tolerationSeconds in use wins.
    short = {**waits, "tolerationSeconds": 5}
    assert eviction_delay(pod(waits, short), unreachable) == 5.0


def test_with_managed_keeps_others_taints_and_our_time_added() -> None:
    theirs = {"key": "gpu", "value": "yes", "effect": "NoSchedule"}
    ours = taint(UNREACHABLE, "NoExecute", "2026-01-01T00:00:00Z")
    current = [theirs, ours]
    again = with_managed(current, [taint(UNREACHABLE, "NoExecute", "2026-06-01T00:00:00Z")])
    assert again == [theirs, ours]
    assert with_managed(current, []) == [theirs]
    assert same_taints(with_managed(current, [ours]), current)


# -- zone disruption -------------------------------------------------------------


def test_zone_states_partial_full_and_a_lost_zone() -> None:
    policy = DisruptionPolicy()
    assert zone_states({"": (3, 1)}, policy) == {"": NORMAL}
    assert zone_states({"": (3, 2)}, policy) == {"": NORMAL}  # too few to be a pattern
    assert zone_states({"": (4, 3)}, policy) == {"": PARTIAL}
    assert zone_states({"": (4, 4)}, policy) == {"": FULL}
    # One zone entirely gone while another is fine: the zone is really gone.
    assert zone_states({"a": (3, 3), "b": (3, 0)}, policy) == {"a": NORMAL, "b": NORMAL}
    assert zone_states({"a": (3, 3), "b": (3, 3)}, policy) == {"a": FULL, "b": FULL}
    assert rate_for(FULL, policy) == 0.0
    assert rate_for(PARTIAL, policy) == policy.secondary_rate
    assert rate_for(NORMAL, policy) == math.inf


def test_zone_label_and_policy_validation() -> None:
    assert zone_of({"topology.kubernetes.io/zone": "z1"}) == "z1"
    assert zone_of({"failure-domain.beta.kubernetes.io/zone": "old"}) == "old"
    assert zone_of(None) == ""
    with pytest.raises(ValueError, match="unhealthy_threshold"):
        DisruptionPolicy(unhealthy_threshold=0)
    with pytest.raises(ValueError, match="secondary_rate"):
        DisruptionPolicy(secondary_rate=-1)


def test_token_bucket_admits_at_the_rate() -> None:
    bucket = TokenBucket(0.0)
    assert bucket.take(0.5, 0.0)
    assert not bucket.take(0.5, 1.0)
    assert bucket.take(0.5, 2.0)
    assert not bucket.take(0.0, 100.0)
    assert bucket.take(math.inf, 100.0)


# -- the timing contract -----------------------------------------------------------


def test_default_timing_is_safe_and_named_errors() -> None:
    assert DEFAULT_TIMING.grace >= safe_grace(DEFAULT_TIMING.fence_timeout)
    with pytest.raises(ValueError, match="grace"):
        FailoverTiming(fence_timeout=2.0, grace=2.0)
    with pytest.raises(ValueError, match="renew_interval"):
        FailoverTiming(renew_interval=3.0, fence_timeout=2.0, grace=5.0)


@given(
    fence=st.floats(0.5, 30),
    agent_rate=st.floats(1 - MAX_DRIFT, 1 + MAX_DRIFT),
    plane_rate=st.floats(1 - MAX_DRIFT, 1 + MAX_DRIFT),
    delay=st.floats(0, 5),
)
def test_no_overlap_under_any_allowed_drift(fence: float, agent_rate: float, plane_rate: float,
                                            delay: float) -> None:
    """Real time at which the agent's containers are certainly dead is before
    the real time at which the control plane may evict, whatever the clock
    rates (within MAX_DRIFT) and however late the renewal was seen."""
    from corral.failover import KILL_BOUND

    grace = safe_grace(fence)
    # A clock running at rate r shows r*t after t real seconds; the renewal
    # was sent at real time 0 and seen ``delay`` later.
    dead_at = fence / agent_rate + KILL_BOUND
    evict_at = delay + grace / plane_rate
    assert dead_at < evict_at


def test_node_lifecycle_settings_parse_and_name_bad_parts() -> None:
    from corral.controllers.nodelifecycle import NodeLifecycleConfig, parse_node_lifecycle

    cfg = parse_node_lifecycle("grace=3, detector=phi,unhealthy-threshold=0.6,secondary-rate=0.05")
    assert (cfg.grace, cfg.detector) == (3.0, "phi")
    assert cfg.disruption.unhealthy_threshold == 0.6 and cfg.disruption.secondary_rate == 0.05
    assert parse_node_lifecycle("") == NodeLifecycleConfig()
    with pytest.raises(ValueError, match="grace: 'x' is not a float"):
        parse_node_lifecycle("grace=x")
    with pytest.raises(ValueError, match="'speed=1'"):
        parse_node_lifecycle("speed=1")
    with pytest.raises(ValueError, match="detector"):
        parse_node_lifecycle("detector=oracle")
    with pytest.raises(ValueError, match="unhealthy_threshold"):
        parse_node_lifecycle("unhealthy-threshold=2")
