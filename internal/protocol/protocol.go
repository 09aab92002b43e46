// Package protocol defines the snapshot stream between the ddi control
// plane and its sidecars (docs/protocol.md): the hello a sidecar sends, the
// messages the control plane pushes, and the acknowledgements. Both the
// local control plane (`ddi dev`) and the Kubernetes controller serve it.
//
// It holds wire types and their helpers only; no transport, no I/O.
package protocol

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"time"

	"ddi.dev/ddi/internal/registry"
)

// Paths on the control plane.
const (
	StreamPath = "/v1/stream"
	AckPath    = "/v1/ack"
)

// Hello opens a stream (the JSON body of POST /v1/stream).
type Hello struct {
	// SidecarID is unique per sidecar process; acks carry it.
	SidecarID string `json:"sidecarID"`
	// Consumer is who the sidecar serves. On Kubernetes the control plane
	// ignores it and derives the identity from the pod's token.
	Consumer registry.Consumer `json:"consumer"`
	// Dependencies are the consumer's declared slots ("alias=selector"), as
	// given to `ddi run --dep` or the ddi.dev/dependencies annotation.
	Dependencies []string `json:"dependencies,omitempty"`
	// ResumeVersion and ResumeHash are the last snapshot the sidecar
	// acknowledged; zero on a first connect.
	ResumeVersion int64  `json:"resumeVersion,omitempty"`
	ResumeHash    string `json:"resumeHash,omitempty"`
}

// Message types pushed by the control plane, one JSON object per line.
const (
	// TypeSnapshot carries the consumer's complete state.
	TypeSnapshot = "snapshot"
	// TypeUnchanged answers a resume whose hash still matches: the
	// sidecar's copy is current and it acks Version.
	TypeUnchanged = "unchanged"
	// TypeHeartbeat keeps idle connections alive; no ack.
	TypeHeartbeat = "heartbeat"
	// TypeError reports a fatal problem with the hello (bad dependency,
	// refused identity); the stream then ends.
	TypeError = "error"
)

// Message is one line of the stream.
type Message struct {
	Type string `json:"type"`
	// Stream is a random token the control plane puts on the first
	// message of a stream; acks must carry it, so only the holder of the
	// stream can acknowledge for its sidecar.
	Stream     string                `json:"stream,omitempty"`
	Version    int64                 `json:"version,omitempty"`
	Hash       string                `json:"hash,omitempty"`
	Consumer   *registry.Consumer    `json:"consumer,omitempty"`
	Bindings   []registry.Binding    `json:"bindings,omitempty"`
	Unresolved []registry.Unresolved `json:"unresolved,omitempty"`
	Error      string                `json:"error,omitempty"`
}

// Ack acknowledges (or, with Error set, rejects) a snapshot: the JSON body
// of POST /v1/ack.
type Ack struct {
	SidecarID string `json:"sidecarID"`
	Stream    string `json:"stream"`
	Version   int64  `json:"version"`
	Hash      string `json:"hash"`
	Error     string `json:"error,omitempty"`
}

// Hash returns a content hash of bindings and unresolved dependencies that
// ignores binding revisions, so a control plane that restarted and lost its
// revision counters still recognises an unchanged snapshot.
func Hash(bindings []registry.Binding, unresolved []registry.Unresolved) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	for _, b := range bindings {
		b.Revision = 0
		_ = enc.Encode(b)
	}
	_, _ = h.Write([]byte{0})
	for _, u := range unresolved {
		_ = enc.Encode(u)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// ProviderView is a provider as the API shows it: secret values are
// replaced by the list of their keys.
type ProviderView struct {
	registry.Provider
	SecretKeys []string `json:"secretKeys,omitempty"`
}

// Redact returns the view of p without secret values.
func Redact(p registry.Provider) ProviderView {
	v := ProviderView{Provider: p}
	for k := range p.Secret {
		v.SecretKeys = append(v.SecretKeys, k)
	}
	slices.Sort(v.SecretKeys)
	v.Secret = nil
	return v
}

// SidecarStatus describes one connected sidecar (GET /v1/sidecars).
type SidecarStatus struct {
	ID           string            `json:"id"`
	Consumer     registry.Consumer `json:"consumer"`
	Dependencies []string          `json:"dependencies"`
	SentVersion  int64             `json:"sentVersion"`
	AckedVersion int64             `json:"ackedVersion"`
	AckedHash    string            `json:"ackedHash,omitempty"`
	AckError     string            `json:"ackError,omitempty"`
	ConnectedAt  time.Time         `json:"connectedAt"`
	Remote       string            `json:"remote"`
	// Replica names the control plane replica the sidecar is connected
	// to, when the control plane runs as several (on Kubernetes).
	Replica string `json:"replica,omitempty"`
}

// ReplicaStatus is what one control plane replica contributed to an
// answer that merges every replica's sidecars (GET /v1/sidecars, GET
// /v1/graph): its number of connected sidecars, or why it could not be
// asked. Self marks the replica that answered. An entry with an empty
// Name says the other replicas could not be listed.
type ReplicaStatus struct {
	Name     string `json:"name"`
	Self     bool   `json:"self,omitempty"`
	Sidecars int    `json:"sidecars"`
	Error    string `json:"error,omitempty"`
}

// SidecarList is the answer of GET /v1/sidecars: the connected sidecars
// and, when the control plane runs as several replicas, what each
// replica contributed (the answering one first) or why it could not be
// asked.
type SidecarList struct {
	Sidecars []SidecarStatus `json:"sidecars"`
	Replicas []ReplicaStatus `json:"replicas,omitempty"`
}
