"""Authorization: who may do what.

``attributes`` turns a request into Kubernetes' authorization attributes,
``rbac`` decides from Roles and bindings, ``node`` confines agents to their
own node, ``chain`` puts the authorizers in order, ``reviews`` answers the
access-review kinds (``kubectl auth can-i``), ``escalation`` stops a user
granting more than they hold.
"""
