package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"sync"
	"time"

	"ddi.dev/ddi/internal/httpapi"
	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
)

// ReplicaPath is the route on which a replica answers its own sidecars'
// streams to the other replicas (docs/kubernetes.md, "Replicas").
const ReplicaPath = "/v1/replica/sidecars"

// Replicas lets a control plane that runs as several replicas (`ddi
// controller`, deploy/ ships two) show every replica's sidecars: each
// replica serves its own sidecars' streams, so the one that answers GET
// /v1/graph, GET /v1/graph/events or GET /v1/sidecars asks the others for
// theirs on ReplicaPath and merges the answers. Providers, resolutions and
// explanations need no merging: every replica indexes the same store.
// Without Replicas (`ddi dev`: one process) nothing is asked.
type Replicas struct {
	// Self names this replica (its pod) in answers.
	Self string
	// Peers returns the other replicas to ask now (not this one).
	Peers func(ctx context.Context) ([]Peer, error)
	// Client sends the requests to peers (TLS, trusting the control
	// plane's CA).
	Client *http.Client
	// Token returns the credential this replica presents to its peers.
	Token func() (string, error)
	// Verify reports whether r comes from another replica: nil when it
	// does, else an error wrapping ErrUnauthenticated, ErrForbidden or
	// ErrThrottled.
	Verify func(ctx context.Context, r *http.Request) error
	// Timeout bounds the answer of one peer; a peer that does not answer
	// within it is reported, not waited for. Default 2s.
	Timeout time.Duration
	// Poll is how often the other replicas are asked again while at
	// least one graph event stream (the live page) is open on this
	// replica; one poll serves every open stream. Default 3s.
	Poll time.Duration
}

// Peer is another replica: its name (the pod's) and the base URL of its
// control plane API.
type Peer struct {
	Name string
	URL  string
}

// ReplicaStatus is what one replica contributed to an answer
// (protocol.ReplicaStatus).
type ReplicaStatus = protocol.ReplicaStatus

// replicaAnswer is the body of GET ReplicaPath: the answering replica's
// own sidecar streams, with their owners (pods) so that a sidecar that
// moved between replicas is counted once.
type replicaAnswer struct {
	Replica  string           `json:"replica"`
	Sidecars []replicaSidecar `json:"sidecars"`
}

type replicaSidecar struct {
	protocol.SidecarStatus
	Owner string `json:"owner"`
}

// maxReplicaAnswer bounds the body read from a peer: about 40,000
// sidecars.
const maxReplicaAnswer = 32 << 20

// sidecarInfo is one connected sidecar stream of any replica, as the
// graph and GET /v1/sidecars merge them.
type sidecarInfo struct {
	owner  string
	status protocol.SidecarStatus
	deps   []registry.Dependency
}

// localSidecars lists this replica's streams. The replica name is set
// when the control plane runs as replicas.
func (s *Server) localSidecars() []sidecarInfo {
	self := ""
	if s.replicas != nil {
		self = s.replicas.Self
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]sidecarInfo, 0, len(s.sessions))
	for _, sess := range s.sessions {
		out = append(out, sidecarInfo{owner: sess.id.Owner, status: sess.status(self), deps: sess.id.Dependencies})
	}
	return out
}

// status describes sess for GET /v1/sidecars. The caller holds s.mu.
func (sess *session) status(replica string) protocol.SidecarStatus {
	deps := make([]string, len(sess.id.Dependencies))
	for i, d := range sess.id.Dependencies {
		deps[i] = d.Alias + "=" + d.SelectorString()
	}
	c := sess.id.Consumer
	c.Labels = maps.Clone(c.Labels)
	return protocol.SidecarStatus{ID: sess.sidecarID, Consumer: c, Dependencies: deps, SentVersion: sess.sentVersion,
		AckedVersion: sess.ackedVersion, AckedHash: sess.ackedHash, AckError: sess.ackError, ConnectedAt: sess.connectedAt,
		Remote: sess.remote, Replica: replica}
}

// handleReplica answers GET ReplicaPath: this replica's own streams, for
// another replica only.
func (s *Server) handleReplica(w http.ResponseWriter, r *http.Request) {
	if s.replicas == nil {
		httpapi.WriteProblem(w, httpapi.NewProblem(http.StatusNotFound, "not-found",
			"this control plane runs as one process and has no replicas to answer"))
		return
	}
	if err := s.replicas.Verify(r.Context(), r); err != nil {
		httpapi.WriteProblem(w, authProblem(err))
		return
	}
	local := s.localSidecars()
	ans := replicaAnswer{Replica: s.replicas.Self, Sidecars: make([]replicaSidecar, len(local))}
	for i, sc := range local {
		ans.Sidecars[i] = replicaSidecar{SidecarStatus: sc.status, Owner: sc.owner}
	}
	httpapi.WriteJSON(w, http.StatusOK, ans)
}

// peerResult is what the other replicas answered: their sidecars, and
// one status per replica asked (this one not included).
type peerResult struct {
	sidecars []sidecarInfo
	replicas []ReplicaStatus
}

// askPeers asks every other replica for its sidecars, in parallel, each
// within Replicas.Timeout. A replica that fails or does not answer in
// time is reported in the result, never waited for longer.
func (s *Server) askPeers(ctx context.Context) peerResult {
	rp := s.replicas
	lctx, cancel := context.WithTimeout(ctx, rp.Timeout)
	peers, err := rp.Peers(lctx)
	cancel()
	if err != nil {
		return peerResult{replicas: []ReplicaStatus{{Error: "could not list the other replicas: " + err.Error()}}}
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].Name < peers[j].Name })
	answers := make([][]sidecarInfo, len(peers))
	statuses := make([]ReplicaStatus, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			list, err := s.askPeer(ctx, p)
			statuses[i] = ReplicaStatus{Name: p.Name, Sidecars: len(list)}
			if err != nil {
				statuses[i].Error = err.Error()
				s.log.Warn("another replica did not answer for its sidecars", "replica", p.Name, "url", p.URL, "err", err)
			}
			answers[i] = list
		})
	}
	wg.Wait()
	var res peerResult
	res.replicas = statuses
	for _, a := range answers {
		res.sidecars = append(res.sidecars, a...)
	}
	return res
}

// askPeer asks one replica for its sidecars.
func (s *Server) askPeer(ctx context.Context, p Peer) ([]sidecarInfo, error) {
	rp := s.replicas
	ctx, cancel := context.WithTimeout(ctx, rp.Timeout)
	defer cancel()
	token, err := rp.Token()
	if err != nil {
		return nil, fmt.Errorf("this replica's token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+ReplicaPath, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := rp.Client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("no answer within %s", rp.Timeout)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is the peer's, known to the reader
		}
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReplicaAnswer+1))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("no complete answer within %s", rp.Timeout)
		}
		return nil, err
	}
	if len(body) > maxReplicaAnswer {
		return nil, fmt.Errorf("the answer is larger than %d bytes", maxReplicaAnswer)
	}
	if resp.StatusCode != http.StatusOK {
		var prob httpapi.Problem
		if json.Unmarshal(body, &prob) == nil && prob.Detail != "" {
			return nil, fmt.Errorf("%s: %s", resp.Status, prob.Detail)
		}
		return nil, errors.New(resp.Status)
	}
	var ans replicaAnswer
	if err := json.Unmarshal(body, &ans); err != nil {
		return nil, fmt.Errorf("decode the answer: %w", err)
	}
	out := make([]sidecarInfo, 0, len(ans.Sidecars))
	for _, sc := range ans.Sidecars {
		st := sc.SidecarStatus
		if st.Replica == "" {
			st.Replica = p.Name
		}
		// The peer parsed these itself when its sidecar connected; an
		// entry this replica cannot parse (a newer syntax) is left out of
		// the edges, not of the list.
		var deps []registry.Dependency
		for _, d := range st.Dependencies {
			if dep, err := registry.ParseDependency(d); err == nil {
				deps = append(deps, dep)
			}
		}
		out = append(out, sidecarInfo{owner: sc.Owner, status: st, deps: deps})
	}
	return out, nil
}

// mergeSidecars joins this replica's sidecars with the other replicas'.
// A sidecar that reconnected to another replica may briefly be on two;
// the newest stream counts.
func mergeSidecars(local, remote []sidecarInfo) []sidecarInfo {
	if len(remote) == 0 {
		return local
	}
	byKey := make(map[string]int, len(local)+len(remote))
	out := make([]sidecarInfo, 0, len(local)+len(remote))
	for _, list := range [][]sidecarInfo{local, remote} {
		for _, sc := range list {
			k := sc.owner + "\x00" + sc.status.ID
			if i, ok := byKey[k]; ok {
				if sc.status.ConnectedAt.After(out[i].status.ConnectedAt) {
					out[i] = sc
				}
				continue
			}
			byKey[k] = len(out)
			out = append(out, sc)
		}
	}
	return out
}

// allSidecars is every replica's sidecars and the status of each
// replica, this one first. Without Replicas it is this process's
// sidecars and no status.
func (s *Server) allSidecars(ctx context.Context) ([]sidecarInfo, []ReplicaStatus) {
	local := s.localSidecars()
	if s.replicas == nil {
		return local, nil
	}
	return s.merge(local, s.askPeers(ctx))
}

// merge joins local sidecars with a peer result.
func (s *Server) merge(local []sidecarInfo, res peerResult) ([]sidecarInfo, []ReplicaStatus) {
	statuses := append([]ReplicaStatus{{Name: s.replicas.Self, Self: true, Sidecars: len(local)}}, res.replicas...)
	return mergeSidecars(local, res.sidecars), statuses
}

// peerPoll asks the other replicas every Replicas.Poll while graph event
// streams are open on this replica, and tells them when the answer
// changed: one poll serves every open stream, so the cost is one request
// per peer per Poll whatever the number of open pages. It stops when the
// last stream ends.
type peerPoll struct {
	mu      sync.Mutex
	users   int
	running bool
	// have is closed once result holds a first answer of this run.
	have    chan struct{}
	result  peerResult
	changed chan struct{}
}

// subscribe registers an open event stream and starts the poll if it is
// the first; the returned function unregisters it.
func (s *Server) subscribePeers() func() {
	pp := &s.peerPoll
	pp.mu.Lock()
	pp.users++
	if !pp.running {
		pp.running = true
		pp.have = make(chan struct{})
		pp.result = peerResult{}
		if pp.changed == nil {
			pp.changed = make(chan struct{})
		}
		go s.pollPeers(pp.have)
	}
	pp.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			pp.mu.Lock()
			pp.users--
			pp.mu.Unlock()
		})
	}
}

// peersNow returns the newest peer result (waiting for the first answer
// of this run, or ctx) and a channel closed when a newer one differs.
func (s *Server) peersNow(ctx context.Context) (peerResult, <-chan struct{}) {
	pp := &s.peerPoll
	pp.mu.Lock()
	have := pp.have
	pp.mu.Unlock()
	select {
	case <-have:
	case <-ctx.Done():
	case <-s.stopping:
	}
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return pp.result, pp.changed
}

// pollPeers runs the poll until no event stream is left or the server
// stops. have is this run's first-answer channel.
func (s *Server) pollPeers(have chan struct{}) {
	pp := &s.peerPoll
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	first := true
	ticker := time.NewTicker(s.replicas.Poll)
	defer ticker.Stop()
	for {
		res := s.askPeers(ctx)
		pp.mu.Lock()
		if first || !reflect.DeepEqual(res, pp.result) {
			pp.result = res
			close(pp.changed)
			pp.changed = make(chan struct{})
		}
		if first {
			close(have)
			first = false
		}
		pp.mu.Unlock()
		select {
		case <-ctx.Done():
			pp.mu.Lock()
			pp.running = false
			pp.mu.Unlock()
			return
		case <-ticker.C:
		}
		pp.mu.Lock()
		if pp.users == 0 {
			pp.running = false
			pp.mu.Unlock()
			return
		}
		pp.mu.Unlock()
	}
}
