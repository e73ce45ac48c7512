"""An API worker takes its server process's leader-election role from that
process's /readyz (api/readiness.py apply_owner_role)."""

from __future__ import annotations

from corral.api.readiness import ServerRole, apply_owner_role


def test_leader_follower_and_standalone_are_taken_with_the_holder() -> None:
    role = ServerRole()
    apply_owner_role(role, "leader", "[+]ping ok\n[+]leader-election ok: role leader, holder vm_1a2b\nreadyz check passed\n")
    assert (role.role, role.holder) == ("leader", "vm_1a2b")
    apply_owner_role(role, "follower", "[+]leader-election ok: role follower, holder other_9\n")
    assert (role.role, role.holder) == ("follower", "other_9")
    apply_owner_role(role, "standalone", "[+]leader-election ok: role standalone\n")
    assert (role.role, role.holder) == ("standalone", "")


def test_an_answer_without_a_known_role_changes_nothing() -> None:
    role = ServerRole()
    apply_owner_role(role, "leader", "[+]leader-election ok: role leader, holder a\n")
    apply_owner_role(role, "", "readyz check failed\n")
    apply_owner_role(role, "emperor", "")
    assert (role.role, role.holder) == ("leader", "a")
