"""core/v1 Volume: every volume source Kubernetes knows.

The sources a local cluster can serve (emptyDir, hostPath, configMap, secret,
projected, downwardAPI, persistentVolumeClaim, nfs, ephemeral, image) are
modelled field by field; cloud and vendor sources keep their real field names
too, so a manifest that uses them is checked and explained like the others.
"""

from __future__ import annotations

from corral.resources.schema import Schema
from corral.resources.schemas.dsl import (
    CORE,
    arr,
    boolean,
    int64,
    integer,
    obj,
    quantity,
    resource_list,
    string,
    string_map,
    strings,
)
from corral.resources.schemas.meta import LABEL_SELECTOR, OBJECT_META
from corral.resources.schemas.refs import (
    LOCAL_OBJECT_REFERENCE,
    OBJECT_FIELD_SELECTOR,
    RESOURCE_FIELD_SELECTOR,
    TYPED_LOCAL_OBJECT_REFERENCE,
    TYPED_OBJECT_REFERENCE,
)

KEY_TO_PATH = obj(
    "Projects one key into a file at a relative path.",
    {
        "key": string("The key to project."),
        "mode": integer("File mode bits, octal 0000-0777 as a decimal number."),
        "path": string("Relative path of the file; may not contain '..'."),
        "user": int64("Owner UID of the file."),
    },
    required=("key", "path"),
    ref=f"{CORE}.KeyToPath",
)

DOWNWARD_API_FILE = obj(
    "A file holding a pod field or a container resource value.",
    {
        "fieldRef": OBJECT_FIELD_SELECTOR,
        "mode": integer("File mode bits."),
        "path": string("Relative path of the file."),
        "resourceFieldRef": RESOURCE_FIELD_SELECTOR,
        "user": int64("Owner UID of the file."),
    },
    required=("path",),
    ref=f"{CORE}.DownwardAPIVolumeFile",
)


def _fs(description: str, fields: dict[str, Schema], ref: str, required: tuple[str, ...] = ()) -> Schema:
    return obj(description, fields, required=required, ref=f"{CORE}.{ref}")


_FS_TYPE = string("File system type to mount, e.g. ext4.")
_READ_ONLY = boolean("Mount read-only.")


def _projection(kind: str, what: str) -> Schema:
    return obj(
        f"Projects keys of a {what} into the volume.",
        {
            "items": arr(KEY_TO_PATH, "Keys to project; all keys when empty."),
            "name": string(f"Name of the {what}."),
            "optional": boolean(f"Whether the {what} may be missing."),
        },
        ref=f"{CORE}.{kind}",
    )


PVC_SPEC = obj(
    "What a persistent volume claim asks for: access modes, size and class.",
    {
        "accessModes": strings("ReadWriteOnce, ReadOnlyMany, ReadWriteMany, ReadWriteOncePod."),
        "dataSource": TYPED_LOCAL_OBJECT_REFERENCE,
        "dataSourceRef": TYPED_OBJECT_REFERENCE,
        "resources": obj(
            "Storage the claim requests and its limit.",
            {
                "limits": resource_list("Maximum storage."),
                "requests": resource_list("Storage requested, e.g. storage: 1Gi."),
            },
            ref=f"{CORE}.VolumeResourceRequirements",
        ),
        "selector": LABEL_SELECTOR,
        "storageClassName": string("StorageClass to provision from."),
        "volumeAttributesClassName": string("VolumeAttributesClass to use."),
        "volumeMode": string("Filesystem or Block."),
        "volumeName": string("Bind to this PersistentVolume."),
    },
    ref=f"{CORE}.PersistentVolumeClaimSpec",
)

VOLUME_PROJECTION = obj(
    "One source of a projected volume.",
    {
        "clusterTrustBundle": obj(
            "Certificates of ClusterTrustBundle objects written to a file.",
            {
                "labelSelector": LABEL_SELECTOR,
                "name": string("Bundle name."),
                "optional": boolean("Whether the bundle may be missing."),
                "path": string("Relative path of the file."),
                "signerName": string("Select bundles by signer."),
                "user": int64("Owner UID of the file."),
            },
            required=("path",),
            ref=f"{CORE}.ClusterTrustBundleProjection",
        ),
        "configMap": _projection("ConfigMapProjection", "ConfigMap"),
        "downwardAPI": obj(
            "Pod fields projected into files.",
            {"items": arr(DOWNWARD_API_FILE, "Files to write.")},
            ref=f"{CORE}.DownwardAPIProjection",
        ),
        "podCertificate": obj(
            "A key and certificate issued for the pod.",
            {
                "certificateChainPath": string("Where to write the certificate chain."),
                "credentialBundlePath": string("Where to write key and chain together."),
                "keyPath": string("Where to write the private key."),
                "keyType": string("Key algorithm, e.g. ECDSAP256."),
                "maxExpirationSeconds": integer("Longest certificate lifetime accepted."),
                "signerName": string("Signer that issues the certificate."),
                "user": int64("Owner UID of the files."),
                "userAnnotations": string_map("Annotations passed to the signer."),
            },
            required=("signerName", "keyType"),
            ref=f"{CORE}.PodCertificateProjection",
        ),
        "secret": _projection("SecretProjection", "Secret"),
        "serviceAccountToken": obj(
            "A token of the pod's service account, refreshed before it expires.",
            {
                "audience": string("Intended audience of the token."),
                "expirationSeconds": int64("Requested lifetime of the token."),
                "path": string("Relative path of the token file."),
                "user": int64("Owner UID of the file."),
            },
            required=("path",),
            ref=f"{CORE}.ServiceAccountTokenProjection",
        ),
    },
    ref=f"{CORE}.VolumeProjection",
)

_SOURCES: dict[str, Schema] = {
    "awsElasticBlockStore": _fs("An AWS EBS disk (deprecated).", {
        "fsType": _FS_TYPE, "partition": integer("Partition number."), "readOnly": _READ_ONLY,
        "volumeID": string("EBS volume ID."),
    }, "AWSElasticBlockStoreVolumeSource", ("volumeID",)),
    "azureDisk": _fs("An Azure data disk (deprecated).", {
        "cachingMode": string("None, ReadOnly or ReadWrite."), "diskName": string("Disk name."),
        "diskURI": string("Disk URI."), "fsType": _FS_TYPE, "kind": string("Disk kind."),
        "readOnly": _READ_ONLY,
    }, "AzureDiskVolumeSource", ("diskName", "diskURI")),
    "azureFile": _fs("An Azure file share (deprecated).", {
        "readOnly": _READ_ONLY, "secretName": string("Secret with the account key."),
        "shareName": string("Share name."),
    }, "AzureFileVolumeSource", ("secretName", "shareName")),
    "cephfs": _fs("A CephFS mount (deprecated).", {
        "monitors": strings("Ceph monitors."), "path": string("Mounted root."),
        "readOnly": _READ_ONLY, "secretFile": string("Key ring path."),
        "secretRef": LOCAL_OBJECT_REFERENCE, "user": string("Rados user."),
    }, "CephFSVolumeSource", ("monitors",)),
    "cinder": _fs("An OpenStack Cinder volume (deprecated).", {
        "fsType": _FS_TYPE, "readOnly": _READ_ONLY, "secretRef": LOCAL_OBJECT_REFERENCE,
        "volumeID": string("Cinder volume ID."),
    }, "CinderVolumeSource", ("volumeID",)),
    "configMap": _fs("A ConfigMap's keys as files.", {
        "defaultMode": integer("Mode bits of the files; default 0644."),
        "defaultUser": int64("Owner UID of the files."),
        "items": arr(KEY_TO_PATH, "Keys to project; all keys when empty."),
        "name": string("Name of the ConfigMap."),
        "optional": boolean("Whether the ConfigMap may be missing."),
    }, "ConfigMapVolumeSource"),
    "csi": _fs("A volume from a CSI driver.", {
        "driver": string("CSI driver name."), "fsType": _FS_TYPE,
        "nodePublishSecretRef": LOCAL_OBJECT_REFERENCE, "readOnly": _READ_ONLY,
        "volumeAttributes": string_map("Driver-specific attributes."),
    }, "CSIVolumeSource", ("driver",)),
    "downwardAPI": _fs("Pod fields and resource values as files.", {
        "defaultMode": integer("Mode bits of the files."),
        "defaultUser": int64("Owner UID of the files."),
        "items": arr(DOWNWARD_API_FILE, "Files to write."),
    }, "DownwardAPIVolumeSource"),
    "emptyDir": _fs("A scratch directory that lives as long as the pod.", {
        "medium": string("Storage medium: empty for the node's disk, or Memory."),
        "mode": integer("Mode bits of the directory."),
        "sizeLimit": quantity(),
    }, "EmptyDirVolumeSource"),
    "ephemeral": _fs("A volume provisioned for the pod and deleted with it.", {
        "volumeClaimTemplate": obj(
            "The claim created for the pod.",
            {"metadata": OBJECT_META, "spec": PVC_SPEC},
            required=("spec",),
            ref=f"{CORE}.PersistentVolumeClaimTemplate",
        ),
    }, "EphemeralVolumeSource"),
    "fc": _fs("A Fibre Channel disk.", {
        "fsType": _FS_TYPE, "lun": integer("Target LUN."), "readOnly": _READ_ONLY,
        "targetWWNs": strings("Target world wide names."), "wwids": strings("Volume WWIDs."),
    }, "FCVolumeSource"),
    "flexVolume": _fs("A volume from a FlexVolume driver (deprecated).", {
        "driver": string("Driver name."), "fsType": _FS_TYPE,
        "options": string_map("Driver options."), "readOnly": _READ_ONLY,
        "secretRef": LOCAL_OBJECT_REFERENCE,
    }, "FlexVolumeSource", ("driver",)),
    "flocker": _fs("A Flocker dataset (deprecated).", {
        "datasetName": string("Dataset name."), "datasetUUID": string("Dataset UUID."),
    }, "FlockerVolumeSource"),
    "gcePersistentDisk": _fs("A GCE persistent disk (deprecated).", {
        "fsType": _FS_TYPE, "partition": integer("Partition number."),
        "pdName": string("Disk name."), "readOnly": _READ_ONLY,
    }, "GCEPersistentDiskVolumeSource", ("pdName",)),
    "gitRepo": _fs("A git repository cloned at pod start (deprecated).", {
        "directory": string("Target directory."), "repository": string("Repository URL."),
        "revision": string("Commit to check out."),
    }, "GitRepoVolumeSource", ("repository",)),
    "glusterfs": _fs("A GlusterFS mount.", {
        "endpoints": string("Endpoints naming the cluster."), "path": string("Volume path."),
        "readOnly": _READ_ONLY,
    }, "GlusterfsVolumeSource", ("endpoints", "path")),
    "hostPath": _fs("A file or directory of the node.", {
        "path": string("Path on the node."),
        "type": string("What must be at the path: DirectoryOrCreate, Directory, File, ..."),
    }, "HostPathVolumeSource", ("path",)),
    "image": _fs("The content of an OCI image, read-only.", {
        "pullPolicy": string("Always, Never or IfNotPresent."),
        "reference": string("Image reference."),
    }, "ImageVolumeSource"),
    "iscsi": _fs("An iSCSI disk.", {
        "chapAuthDiscovery": boolean("CHAP discovery auth."),
        "chapAuthSession": boolean("CHAP session auth."), "fsType": _FS_TYPE,
        "initiatorName": string("Initiator name."), "iqn": string("Target IQN."),
        "iscsiInterface": string("Interface name."), "lun": integer("Target LUN."),
        "portals": strings("Extra target portals."), "readOnly": _READ_ONLY,
        "secretRef": LOCAL_OBJECT_REFERENCE, "targetPortal": string("Target portal."),
    }, "ISCSIVolumeSource", ("targetPortal", "iqn", "lun")),
    "nfs": _fs("An NFS export.", {
        "path": string("Exported path."), "readOnly": _READ_ONLY,
        "server": string("NFS server host name or address."),
    }, "NFSVolumeSource", ("server", "path")),
    "persistentVolumeClaim": _fs("The volume bound to a PersistentVolumeClaim.", {
        "claimName": string("Name of the claim in the pod's namespace."),
        "readOnly": _READ_ONLY,
    }, "PersistentVolumeClaimVolumeSource", ("claimName",)),
    "photonPersistentDisk": _fs("A Photon disk (deprecated).", {
        "fsType": _FS_TYPE, "pdID": string("Disk ID."),
    }, "PhotonPersistentDiskVolumeSource", ("pdID",)),
    "portworxVolume": _fs("A Portworx volume (deprecated).", {
        "fsType": _FS_TYPE, "readOnly": _READ_ONLY, "volumeID": string("Volume ID."),
    }, "PortworxVolumeSource", ("volumeID",)),
    "projected": _fs("Several sources merged into one directory.", {
        "defaultMode": integer("Mode bits of the files."),
        "defaultUser": int64("Owner UID of the files."),
        "sources": arr(VOLUME_PROJECTION, "The sources to merge."),
    }, "ProjectedVolumeSource"),
    "quobyte": _fs("A Quobyte volume (deprecated).", {
        "group": string("Group."), "readOnly": _READ_ONLY, "registry": string("Registry."),
        "tenant": string("Tenant."), "user": string("User."), "volume": string("Volume."),
    }, "QuobyteVolumeSource", ("registry", "volume")),
    "rbd": _fs("A Ceph RBD image (deprecated).", {
        "fsType": _FS_TYPE, "image": string("Image name."), "keyring": string("Keyring."),
        "monitors": strings("Ceph monitors."), "pool": string("Pool."), "readOnly": _READ_ONLY,
        "secretRef": LOCAL_OBJECT_REFERENCE, "user": string("Rados user."),
    }, "RBDVolumeSource", ("monitors", "image")),
    "scaleIO": _fs("A ScaleIO volume (deprecated).", {
        "fsType": _FS_TYPE, "gateway": string("Gateway."),
        "protectionDomain": string("Protection domain."), "readOnly": _READ_ONLY,
        "secretRef": LOCAL_OBJECT_REFERENCE, "sslEnabled": boolean("Use TLS."),
        "storageMode": string("ThickProvisioned or ThinProvisioned."),
        "storagePool": string("Storage pool."), "system": string("System."),
        "volumeName": string("Volume name."),
    }, "ScaleIOVolumeSource", ("gateway", "system", "secretRef")),
    "secret": _fs("A Secret's keys as files.", {
        "defaultMode": integer("Mode bits of the files; default 0644."),
        "defaultUser": int64("Owner UID of the files."),
        "items": arr(KEY_TO_PATH, "Keys to project; all keys when empty."),
        "optional": boolean("Whether the Secret may be missing."),
        "secretName": string("Name of the Secret."),
    }, "SecretVolumeSource"),
    "storageos": _fs("A StorageOS volume (deprecated).", {
        "fsType": _FS_TYPE, "readOnly": _READ_ONLY, "secretRef": LOCAL_OBJECT_REFERENCE,
        "volumeName": string("Volume name."), "volumeNamespace": string("Volume namespace."),
    }, "StorageOSVolumeSource"),
    "vsphereVolume": _fs("A vSphere disk (deprecated).", {
        "fsType": _FS_TYPE, "storagePolicyID": string("Storage policy ID."),
        "storagePolicyName": string("Storage policy name."),
        "volumePath": string("Path of the disk."),
    }, "VsphereVirtualDiskVolumeSource", ("volumePath",)),
}

VOLUME = obj(
    "A named volume the pod's containers may mount; exactly one source is set.",
    {"name": string("Volume name, referred to by volumeMounts (DNS label)."), **_SOURCES},
    required=("name",),
    ref=f"{CORE}.Volume",
)
