"""Beyond Kubernetes: ``corral.dev/auto-rollback: "true"`` on a Deployment
rolls it back to its last good revision when a rollout fails.

A rollout has failed when its Progressing condition says
ProgressDeadlineExceeded, or when pods of the new ReplicaSet crash-loop
(CrashLoopBackOff, or restarted CRASH_RESTARTS times). The last good
revision is the one recorded in ``corral.dev/last-good-revision`` when a
rollout last completed, else the newest older revision. Rolling back is what
``kubectl rollout undo`` does: the Deployment's template is replaced by that
revision's, so the old ReplicaSet is reused and scaled back up.
"""

from __future__ import annotations

import copy

from corral.controllers import deployment_rollout as ro
from corral.controllers.objects import Obj, meta

ANNOTATION = "corral.dev/auto-rollback"
LAST_GOOD = "corral.dev/last-good-revision"
ROLLED_BACK_FROM = "corral.dev/rolled-back-from-revision"
CRASH_RESTARTS = 3


def enabled(d: Obj) -> bool:
    return str((meta(d).get("annotations") or {}).get(ANNOTATION, "")).lower() == "true"


def crash_looping(pods: list[Obj]) -> str | None:
    """Why the pods look crash-looping, or None."""
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (status.get("state") or {}).get("waiting") or {}
            restarts = int(status.get("restartCount") or 0)
            if waiting.get("reason") == "CrashLoopBackOff" or restarts >= CRASH_RESTARTS:
                return (f"container {status.get('name')} of pod {meta(pod).get('name')} is crash-looping "
                        f"({restarts} restarts)")
    return None


def failure(d: Obj, new_rs: Obj | None, new_pods: list[Obj]) -> str | None:
    """Why the current rollout failed, or None if it has not (or cannot be judged)."""
    if new_rs is None or (d.get("spec") or {}).get("paused"):
        return None
    cond = ro.get_condition(d.get("status") or {}, "Progressing")
    named = f'"{meta(new_rs).get("name")}"' in str((cond or {}).get("message", ""))
    if cond is not None and cond.get("reason") == "ProgressDeadlineExceeded" and named:
        deadline = ro.progress_deadline(d)
        return f"rollout exceeded its progress deadline ({deadline}s)"
    return crash_looping(new_pods)


def last_good(d: Obj, new_rs: Obj, old_rses: list[Obj]) -> Obj | None:
    """The ReplicaSet to roll back to: never the failing one."""
    bad = ro.revision(new_rs)
    wanted = (meta(d).get("annotations") or {}).get(LAST_GOOD)
    candidates = [r for r in old_rses if ro.revision(r) != bad]
    for rs in candidates:
        if wanted and str(ro.revision(rs)) == wanted:
            return rs
    older = [r for r in candidates if ro.revision(r) < bad]
    return max(older, key=ro.revision) if older else None


def rolled_back(d: Obj, target: Obj, bad_revision: int) -> Obj:
    """The Deployment with the target ReplicaSet's template, as an undo writes it."""
    out = copy.deepcopy(d)
    template = ro.strip_hash((target.get("spec") or {}).get("template") or {})
    out["spec"]["template"] = template
    annotations = dict(meta(out).get("annotations") or {})
    annotations[ROLLED_BACK_FROM] = str(bad_revision)
    out["metadata"]["annotations"] = annotations
    return out
