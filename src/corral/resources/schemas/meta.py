"""The meta.k8s.io/v1 types every kind shares: object and list metadata,
owner references, label selectors, conditions and the Status, DeleteOptions
and WatchEvent bodies of the wire protocol."""

from __future__ import annotations

from corral.resources.schemas.dsl import (
    META,
    arr,
    boolean,
    free_form,
    int64,
    integer,
    obj,
    string,
    string_map,
    strings,
    time,
)

FIELDS_V1 = free_form(
    "The set of fields a manager owns, in the structured-merge-diff trie form.",
    ref=f"{META}.FieldsV1",
)

MANAGED_FIELDS_ENTRY = obj(
    "Which fields one manager (a client name) set, with which operation and when.",
    {
        "apiVersion": string("Version of the object's schema the field set refers to."),
        "fieldsType": string("Format of fieldsV1; always FieldsV1."),
        "fieldsV1": FIELDS_V1,
        "manager": string("Name of the client that manages these fields."),
        "operation": string("Apply or Update: how the manager last changed them."),
        "subresource": string("Subresource the fields were written through, e.g. status."),
        "time": time(),
    },
    ref=f"{META}.ManagedFieldsEntry",
)

OWNER_REFERENCE = obj(
    "Names an object that owns this one; the owner's deletion cascades to it.",
    {
        "apiVersion": string("API version of the owner."),
        "blockOwnerDeletion": boolean(
            "When true, foreground deletion of the owner waits for this object."
        ),
        "controller": boolean("True for the one owner that manages this object."),
        "kind": string("Kind of the owner."),
        "name": string("Name of the owner."),
        "uid": string("UID of the owner."),
    },
    required=("apiVersion", "kind", "name", "uid"),
    ref=f"{META}.OwnerReference",
    map_type="atomic",
)

OBJECT_META = obj(
    "Standard object metadata: name, namespace, labels, annotations, owners and "
    "the bookkeeping the server keeps (uid, resourceVersion, timestamps).",
    {
        "annotations": string_map("Unstructured key/value data for tools; not selectable."),
        "creationTimestamp": time(),
        "deletionGracePeriodSeconds": int64(
            "Seconds the object is allowed to terminate gracefully; set by the server."
        ),
        "deletionTimestamp": time(),
        "finalizers": arr(
            string(),
            "Tokens that must be removed before the object is deleted from storage.",
            list_type="set",
            strategy="merge",
        ),
        "generateName": string("Prefix for a server-generated name when name is empty."),
        "generation": int64("Sequence number of the desired state; bumped on spec changes."),
        "labels": string_map("Key/value pairs used to select and organise objects."),
        "managedFields": arr(
            MANAGED_FIELDS_ENTRY, "Field ownership for server-side apply; internal."
        ),
        "name": string("Unique name within the namespace (or the cluster)."),
        "namespace": string("Namespace the object lives in; empty for cluster objects."),
        "ownerReferences": arr(
            OWNER_REFERENCE,
            "Objects this one depends on; used by garbage collection.",
            list_type="map",
            keys=("uid",),
            merge_key="uid",
            strategy="merge",
        ),
        "resourceVersion": string("Opaque version for optimistic concurrency and watches."),
        "selfLink": string("Deprecated; never set."),
        "uid": string("Unique identifier for the object's whole lifetime; server-set."),
    },
    ref=f"{META}.ObjectMeta",
)

LIST_META = obj(
    "Metadata of a list: the resourceVersion it was read at and the continue token.",
    {
        "continue": string("Token to fetch the next page with the same query."),
        "remainingItemCount": int64("Approximate number of items after this page."),
        "resourceVersion": string("Store revision the list was read at; watch from here."),
        "selfLink": string("Deprecated; never set."),
        "shardInfo": obj(
            "Which shard of the collection this list holds.",
            {"selector": string("The shard selector the list was filtered with.")},
            ref=f"{META}.ShardInfo",
        ),
    },
    ref=f"{META}.ListMeta",
)

LABEL_SELECTOR_REQUIREMENT = obj(
    "A label key, an operator (In, NotIn, Exists, DoesNotExist) and values.",
    {
        "key": string("Label key the requirement applies to."),
        "operator": string("In, NotIn, Exists or DoesNotExist."),
        "values": strings("Values for In and NotIn; empty for Exists and DoesNotExist."),
    },
    required=("key", "operator"),
    ref=f"{META}.LabelSelectorRequirement",
)

LABEL_SELECTOR = obj(
    "Selects objects by labels: all matchLabels and all matchExpressions must hold. "
    "An empty selector matches everything, a null one nothing.",
    {
        "matchExpressions": arr(LABEL_SELECTOR_REQUIREMENT, "Requirements, ANDed."),
        "matchLabels": string_map("Exact key=value pairs, ANDed."),
    },
    ref=f"{META}.LabelSelector",
    map_type="atomic",
)

CONDITION = obj(
    "One aspect of an object's current state (type), whether it holds (status) and why.",
    {
        "lastTransitionTime": time(),
        "message": string("Human-readable detail about the transition."),
        "observedGeneration": int64("metadata.generation the condition was set for."),
        "reason": string("CamelCase machine-readable cause of the last transition."),
        "status": string("True, False or Unknown.", enum=("True", "False", "Unknown")),
        "type": string("The condition's type in CamelCase, e.g. Ready."),
    },
    required=("type", "status", "lastTransitionTime", "reason", "message"),
    ref=f"{META}.Condition",
)

STATUS_CAUSE = obj(
    "One reason an operation failed, naming the field when there is one.",
    {
        "field": string("Path of the offending field, e.g. spec.containers[0].name."),
        "message": string("Human-readable description of the cause."),
        "reason": string("Machine-readable cause, e.g. FieldValueInvalid."),
    },
    ref=f"{META}.StatusCause",
)

STATUS_DETAILS = obj(
    "Extra data about a failure: the object it concerns and field causes.",
    {
        "causes": arr(STATUS_CAUSE, "Every cause of the failure."),
        "group": string("API group of the object concerned."),
        "kind": string("Kind (or resource) of the object concerned."),
        "name": string("Name of the object concerned."),
        "retryAfterSeconds": integer("Seconds to wait before retrying."),
        "uid": string("UID of the object concerned."),
    },
    ref=f"{META}.StatusDetails",
)

STATUS = obj(
    "Result of an operation that returns no object, and the body of every error.",
    {
        "apiVersion": string("Always v1."),
        "code": integer("HTTP status code of the response."),
        "details": STATUS_DETAILS,
        "kind": string("Always Status."),
        "message": string("Human-readable description of the result."),
        "metadata": LIST_META,
        "reason": string("Machine-readable reason, e.g. NotFound or AlreadyExists."),
        "status": string("Success or Failure."),
    },
    ref=f"{META}.Status",
)

PRECONDITIONS = obj(
    "Conditions the object must meet for a delete to proceed.",
    {
        "resourceVersion": string("Delete only at this resourceVersion."),
        "uid": string("Delete only the object with this UID."),
    },
    ref=f"{META}.Preconditions",
)

DELETE_OPTIONS = obj(
    "Options of a delete: grace period, preconditions and how dependents are removed.",
    {
        "apiVersion": string("Versioned schema of this object."),
        "dryRun": strings("When [All], validate the request but persist nothing."),
        "gracePeriodSeconds": int64("Seconds before the object is deleted; 0 is immediate."),
        "ignoreStoreReadErrorWithClusterBreakingPotential": boolean(
            "Delete an object whose stored form cannot be read; dangerous."
        ),
        "kind": string("Always DeleteOptions."),
        "orphanDependents": boolean("Deprecated: use propagationPolicy=Orphan."),
        "preconditions": PRECONDITIONS,
        "propagationPolicy": string(
            "Orphan, Background or Foreground: what happens to dependents."
        ),
    },
    ref=f"{META}.DeleteOptions",
)

RAW_EXTENSION = free_form(
    "An embedded object of any kind, kept as sent.",
    ref="io.k8s.apimachinery.pkg.runtime.RawExtension",
)

WATCH_EVENT = obj(
    "One change in a watch stream: its type and the object after it.",
    {
        "object": RAW_EXTENSION,
        "type": string("ADDED, MODIFIED, DELETED, BOOKMARK or ERROR."),
    },
    required=("type", "object"),
    ref=f"{META}.WatchEvent",
)
