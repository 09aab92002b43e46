// Package kube is the production registry store: a registry.Store kept in
// Provider custom resources (api/v1alpha1), so that the cluster's etcd is
// the distributed store. It passes the same conformance suite
// (registrytest) as the embedded bbolt store, against a real API server.
//
// # Mapping
//
// A registry.Provider is the Provider object of the same namespace and
// name. Type, version, labels (spec.labels, not metadata.labels), config,
// secretRef and scope map field for field. Endpoints are spec.endpoints;
// for a Provider whose spec.serviceRef derives them, they are
// status.endpoints as the controller resolved them, and Update keeps the
// serviceRef and ignores the endpoints it is given. Metadata that others
// own (their labels, annotations, finalizers, owner references) survives
// an Update.
//
// # Revisions
//
// Revision is the object's resourceVersion read as an integer. Kubernetes
// asks clients to treat resourceVersions as opaque; this store relies on
// what they are on every API server backed by etcd: etcd revisions, one
// counter for the whole cluster that grows with every write. So revisions
// grow but are not consecutive. Update and Delete with a non-zero revision
// send it as a resourceVersion precondition, and the API server's 409
// becomes registry.ErrConflict; 404 is registry.ErrNotFound, AlreadyExists
// is registry.ErrExists, and a 422 (the CRD's validation refused the
// object) is a *registry.FieldError naming the field. The API server skips
// updates that change nothing, while the registry gives every write a new
// revision, so each write also sets the ddi.dev/written annotation.
//
// # Watch
//
// A Store runs one watch of the API server (resourceVersion plus
// bookmarks) and keeps the events it delivers in a bounded log; every
// Watch call is served from that log and fanned out in process, so watch
// load on the API server does not grow with the number of watchers. The
// log starts at the list New makes, which is why Watch(0), or from any
// revision before the store started, is registry.ErrCompacted: list again
// and watch from the list's revision. When the API server answers the
// store's own watch with 410 Gone (its history no longer reaches the last
// revision seen), the store lists again, restarts the log and closes every
// watch channel; its watchers then get registry.ErrCompacted and list
// again. Events arrive in revision order, each once.
//
// # Leases
//
// A run-time registration has spec.lease: a ttl (1s to 24h) and a
// renewTime the store sets on every create, update and renewal; the
// lease expires at renewTime + ttl. The store's sweeper deletes expired
// Providers every Options.SweepInterval, with the resourceVersion it last
// saw as a precondition so that a concurrent renewal wins. Expiry is
// measured on the sweeping process's clock against the writer's, so clock
// skew between replicas shifts it; every replica may sweep, safely.
//
// # Ownership
//
// A provider registered by a Pod carries the owner
// "pod:<namespace>/<name>/<uid>" (PodOwner). The store keeps the owner in
// the ddi.dev/owner annotation and, for a Pod owner, adds an
// ownerReference to that Pod, so that Kubernetes' garbage collector
// deletes the registration with the Pod even if no lease sweeper runs. A
// Pod can only own a Provider in its own namespace (owner references do
// not cross namespaces); the store refuses the other case with a
// *registry.FieldError.
//
// # Secrets
//
// Secret material never lives in the Provider object, which many may
// read. The spec holds only secretRef, a reference to a Secret the
// control plane reads. Secret material given to the store inline
// (registry.Provider.Secret, as a run-time registration may carry) goes to
// an immutable Secret that the store creates in its own namespace,
// Options.SecretNamespace (ddi-system), under a fresh random name, and
// names in the Provider's ddi.dev/inline-secret annotation. Keeping them
// there means the controller may create and delete Secrets in ddi-system
// only, never in a namespace of someone else's. The Secret has type
// ddi.dev/inline-secret, the label ddi.dev/secret-of set to the Provider's
// UID (and the store's partition labels), and the annotation
// ddi.dev/provider naming the Provider for people.
//
// The annotation is anyone's to write who may edit a Provider, so it is
// never trusted: the store reads a Secret as a Provider's material, and
// deletes it for the Provider, only if it has that type and names that
// Provider's UID; a delete is conditional on the UID of the Secret it
// checked. Whatever else the annotation names is ignored and left alone.
//
// A change of material writes a new Secret before the Provider points at
// it and deletes the old one after. An owner reference cannot reach from
// ddi-system into the Provider's namespace, so the garbage collector does
// not delete the Secret with its Provider: the store does, when its watch
// sees the Provider go (whoever deleted it), and, for a Provider that went
// while no store watched or a write that stopped half way, when it starts
// and every ten minutes it deletes the Secrets of its partition that no
// Provider names and that are older than two minutes. Create writes the
// Provider first, so a reader in another process may briefly find the
// Secret missing: it waits up to Options.SecretWait for a young Provider,
// then logs and reads the Provider without secret material.
//
// # Partitions
//
// Options.Labels splits a cluster's Providers between independent
// registries: the store labels what it creates and sees nothing else. The
// tests use it to give every conformance subtest its own store on one API
// server.
//
// The package does not validate or normalise providers beyond what the
// API server's CRD validation enforces (callers use
// registry.ValidateProvider), and needs a client that reads the API server
// directly (NewClient), not a controller-runtime cache.
package kube
