package podauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ddi.dev/ddi/internal/controlplane"
	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/registry/kube"
)

// Claims of a pod-bound service-account token, as a TokenReview reports
// them in status.user.extra.
const (
	ExtraPodName = "authentication.kubernetes.io/pod-name"
	ExtraPodUID  = "authentication.kubernetes.io/pod-uid"
)

// AnnotationDependencies is the pod annotation listing dependencies
// ("alias=selector;..."), as in package inject.
const AnnotationDependencies = "ddi.dev/dependencies"

// DependencySource returns dependencies declared for a pod outside the pod
// itself (DependencySet objects that select it).
type DependencySource func(ctx context.Context, pod *corev1.Pod) ([]registry.Dependency, error)

// ProviderGetter reads a stored provider; AuthorizeWrite uses it to see who
// owns a provider a sidecar wants to replace.
type ProviderGetter interface {
	Get(ctx context.Context, namespace, name string) (registry.Provider, error)
}

// Options configure an Authenticator.
type Options struct {
	// TokenReviews verifies tokens. Required.
	TokenReviews kubernetes.Interface
	// Pods reads pods; pass an uncached reader (a manager's APIReader) or a
	// cache that falls back to one. Required.
	Pods client.Reader
	// Audience the tokens must be issued for. Default "ddi".
	Audience string
	// Dependencies adds dependencies from DependencySet objects. Optional.
	Dependencies DependencySource
	// Providers lets AuthorizeWrite check ownership of existing providers.
	// Required for writes.
	Providers ProviderGetter
	// CacheTTL is how long a verified token is trusted before it is
	// reviewed again, never past the token's own expiry. Default 10m; the
	// pod is re-read on every request, so a deleted pod's token stops
	// working at once.
	CacheTTL time.Duration
	// ReviewsPerSecond and ReviewBurst bound the TokenReviews one source
	// address may cause (tokens not yet remembered); beyond them requests
	// are refused with 429 without asking the API server. Defaults 5 and
	// 20: a pod needs one review per token rotation.
	ReviewsPerSecond float64
	ReviewBurst      int
	// ReplicaAudience and ReplicaServiceAccount (a user name,
	// system:serviceaccount:NAMESPACE:NAME) identify the controller's
	// other replicas (VerifyReplica). Empty: none are accepted.
	ReplicaAudience       string
	ReplicaServiceAccount string
	Logger                *slog.Logger
}

// Authenticator is a controlplane.Authenticator for sidecars in pods.
type Authenticator struct {
	opts Options
	log  *slog.Logger

	mu    sync.Mutex
	cache map[[32]byte]cachedReview
	// users and access remember users' TokenReviews and
	// SubjectAccessReviews (users.go).
	users  map[[32]byte]cachedUser
	access map[accessKey]cachedAccess
	// sources limits the reviews each remote address may cause.
	sources map[string]*rate.Limiter
}

// cachedReview is a remembered TokenReview: a pod, or a refusal (err).
type cachedReview struct {
	who     podRef
	err     error
	expires time.Time
}

// refusalTTL bounds how long a refused token is remembered when it names
// no expiry of its own.
const refusalTTL = 5 * time.Minute

// podRef is what a verified token says about its pod.
type podRef struct {
	namespace, name, serviceAccount string
	uid                             types.UID
}

var _ controlplane.Authenticator = (*Authenticator)(nil)

// New checks opts and returns an Authenticator.
func New(opts Options) (*Authenticator, error) {
	if opts.TokenReviews == nil || opts.Pods == nil {
		return nil, errors.New("podauth: Options.TokenReviews and Options.Pods are required")
	}
	if opts.Audience == "" {
		opts.Audience = "ddi"
	}
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = 10 * time.Minute
	}
	if opts.ReviewsPerSecond <= 0 {
		opts.ReviewsPerSecond = 5
	}
	if opts.ReviewBurst <= 0 {
		opts.ReviewBurst = 20
	}
	a := &Authenticator{opts: opts, log: opts.Logger, cache: make(map[[32]byte]cachedReview), sources: make(map[string]*rate.Limiter),
		users: make(map[[32]byte]cachedUser), access: make(map[accessKey]cachedAccess)}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	return a, nil
}

// Identify verifies the request's bearer token and returns the identity of
// its pod. The hello's consumer and dependencies are ignored.
func (a *Authenticator) Identify(ctx context.Context, r *http.Request, _ *protocol.Hello) (controlplane.Identity, error) {
	pod, err := a.authenticate(ctx, r)
	if err != nil {
		return controlplane.Identity{}, err
	}
	return a.identity(ctx, pod)
}

// Authenticate verifies the request's bearer token and returns its pod;
// the controller uses it to guard every route of the control plane API.
func (a *Authenticator) Authenticate(ctx context.Context, r *http.Request) (*corev1.Pod, error) {
	return a.authenticate(ctx, r)
}

// Caller verifies the request's bearer token. A sidecar's token (its
// claims name the audience) returns its pod as the caller: never an
// admin, its own consumer and pod only. Any other token is a user's
// (users.go): verified with the API server's own audience, allowed what
// the user's RBAC allows, route by route.
func (a *Authenticator) Caller(ctx context.Context, r *http.Request) (controlplane.Caller, error) {
	if token, ok := bearer(r); ok && !isPodToken(token, a.opts.Audience) {
		return a.userCaller(ctx, r, token)
	}
	pod, err := a.authenticate(ctx, r)
	if err != nil {
		return controlplane.Caller{}, err
	}
	return controlplane.Caller{Consumer: consumerOf(pod), Owner: kube.PodOwner(pod.Namespace, pod.Name, pod.UID)}, nil
}

// Recheck verifies the stream's token again (a review is cached no longer
// than Options.CacheTTL and never past the token's expiry) and reads its
// pod: a stream ends when its pod is deleted or replaced, or its token
// expires. The sidecar then reconnects with its current token.
func (a *Authenticator) Recheck(ctx context.Context, r *http.Request, id controlplane.Identity) error {
	pod, err := a.authenticate(ctx, r)
	if err != nil {
		return err
	}
	if owner := kube.PodOwner(pod.Namespace, pod.Name, pod.UID); owner != id.Owner {
		return fmt.Errorf("%w: the stream was opened for %s, the token now names %s", controlplane.ErrUnauthenticated, id.Owner, owner)
	}
	return nil
}

func consumerOf(pod *corev1.Pod) registry.Consumer {
	return registry.Consumer{
		Namespace:      pod.Namespace,
		Name:           WorkloadName(pod),
		ServiceAccount: pod.Spec.ServiceAccountName,
		Labels:         pod.Labels,
	}
}

func (a *Authenticator) identity(ctx context.Context, pod *corev1.Pod) (controlplane.Identity, error) {
	id := controlplane.Identity{
		Consumer: consumerOf(pod),
		Owner:    kube.PodOwner(pod.Namespace, pod.Name, pod.UID),
	}
	seen := map[string]bool{}
	if s := pod.Annotations[AnnotationDependencies]; s != "" {
		deps, err := registry.ParseDependencies(s)
		if err != nil {
			return controlplane.Identity{}, &registry.FieldError{Field: "annotation " + AnnotationDependencies + " of pod " + pod.Namespace + "/" + pod.Name,
				Value: s, Reason: err.Error()}
		}
		for _, d := range deps {
			seen[d.Alias] = true
			id.Dependencies = append(id.Dependencies, d)
		}
	}
	if a.opts.Dependencies != nil {
		more, err := a.opts.Dependencies(ctx, pod)
		if err != nil {
			return controlplane.Identity{}, fmt.Errorf("dependency sets of pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		// The pod's own annotation wins over a DependencySet for the same
		// alias; the DependencySet's status reports the conflict.
		for _, d := range more {
			if !seen[d.Alias] {
				seen[d.Alias] = true
				id.Dependencies = append(id.Dependencies, d)
			}
		}
	}
	return id, nil
}

// AuthorizeWrite lets a sidecar write only run-time registrations of its
// own pod: in the pod's namespace, owned by the pod (new ones become owned
// by it), never a provider that someone else declared or registered. The
// owner a request names (a sidecar sends its sidecar id) is not trusted
// and is replaced by the pod; ownership is checked against the stored
// provider.
func (a *Authenticator) AuthorizeWrite(ctx context.Context, r *http.Request, p *registry.Provider) error {
	if token, ok := bearer(r); ok && !isPodToken(token, a.opts.Audience) {
		if _, err := a.reviewUser(ctx, token, sourceOf(r)); err != nil {
			return err
		}
		return fmt.Errorf("%w: %v", controlplane.ErrForbidden, errUserWrite)
	}
	pod, err := a.authenticate(ctx, r)
	if err != nil {
		return err
	}
	owner := kube.PodOwner(pod.Namespace, pod.Name, pod.UID)
	if p.Namespace != pod.Namespace {
		return fmt.Errorf("%w: pod %s/%s may register providers in its own namespace %s only, not %s", controlplane.ErrForbidden, pod.Namespace, pod.Name, pod.Namespace, p.Namespace)
	}
	if a.opts.Providers == nil {
		return fmt.Errorf("%w: this control plane accepts no registrations from sidecars", controlplane.ErrForbidden)
	}
	cur, err := a.opts.Providers.Get(ctx, p.Namespace, p.Name)
	switch {
	case errors.Is(err, registry.ErrNotFound):
	case err != nil:
		return fmt.Errorf("check owner of provider %s: %w", p.Key(), err)
	case cur.Owner != owner:
		who := cur.Owner
		if who == "" {
			who = "a declared Provider object"
		}
		return fmt.Errorf("%w: provider %s exists and belongs to %s; pod %s may change only its own registrations", controlplane.ErrForbidden, p.Key(), who, pod.Name)
	}
	p.Owner = owner
	return nil
}

// authenticate verifies the bearer token and returns the live pod it was
// issued for.
func (a *Authenticator) authenticate(ctx context.Context, r *http.Request) (*corev1.Pod, error) {
	token, ok := bearer(r)
	if !ok {
		return nil, fmt.Errorf("%w: send the pod's projected service-account token (audience %q), or a person's Kubernetes token (ddi --kubeconfig), as Authorization: Bearer", controlplane.ErrUnauthenticated, a.opts.Audience)
	}
	ref, err := a.review(ctx, token, sourceOf(r))
	if err != nil {
		return nil, err
	}
	var pod corev1.Pod
	if err := a.opts.Pods.Get(ctx, client.ObjectKey{Namespace: ref.namespace, Name: ref.name}, &pod); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: the token's pod %s/%s no longer exists", controlplane.ErrUnauthenticated, ref.namespace, ref.name)
		}
		return nil, fmt.Errorf("read pod %s/%s: %w", ref.namespace, ref.name, err)
	}
	if pod.UID != ref.uid {
		return nil, fmt.Errorf("%w: the token was issued to an earlier pod named %s/%s", controlplane.ErrUnauthenticated, ref.namespace, ref.name)
	}
	if pod.Spec.ServiceAccountName != ref.serviceAccount && !(pod.Spec.ServiceAccountName == "" && ref.serviceAccount == "default") {
		return nil, fmt.Errorf("%w: the token's service account %s is not pod %s/%s's", controlplane.ErrUnauthenticated, ref.serviceAccount, ref.namespace, ref.name)
	}
	return &pod, nil
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// review runs (or remembers) the TokenReview of token.
func (a *Authenticator) review(ctx context.Context, token, source string) (podRef, error) {
	key := sha256.Sum256([]byte(token))
	now := time.Now()
	a.mu.Lock()
	c, ok := a.cache[key]
	if ok && now.After(c.expires) {
		delete(a.cache, key)
		ok = false
	}
	a.mu.Unlock()
	if ok {
		return c.who, c.err
	}
	// Tokens that cannot be a pod's projected token for this audience are
	// refused here, without a TokenReview: junk costs the API server
	// nothing.
	claims, err := precheck(token, a.opts.Audience, now)
	if err != nil {
		return podRef{}, fmt.Errorf("%w: %v", controlplane.ErrUnauthenticated, err)
	}
	if !a.allow(source, now) {
		return podRef{}, fmt.Errorf("%w %s", controlplane.ErrThrottled, source)
	}
	who, err := a.tokenReview(ctx, token)
	var unauth bool
	if err != nil {
		unauth = errors.Is(err, controlplane.ErrUnauthenticated)
		if !unauth {
			return podRef{}, err // the API server failed: not the token's fault, not remembered
		}
	}
	a.mu.Lock()
	if len(a.cache) > 100_000 {
		clear(a.cache) // a crude bound; entries are cheap to get again
	}
	var expires time.Time
	if unauth {
		// Refusals are remembered too, so the same junk token costs one
		// review; a token that was refused stays refused.
		expires = now.Add(refusalTTL)
		if !claims.exp.IsZero() && claims.exp.Before(expires) {
			expires = claims.exp
		}
	} else {
		expires = now.Add(a.opts.CacheTTL)
		if !claims.exp.IsZero() && claims.exp.Before(expires) {
			expires = claims.exp // never trust a token past its own expiry
		}
	}
	a.cache[key] = cachedReview{who: who, err: err, expires: expires}
	a.mu.Unlock()
	return who, err
}

// allow takes one review from source's budget.
func (a *Authenticator) allow(source string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	l, ok := a.sources[source]
	if !ok {
		if len(a.sources) > 10_000 {
			// Full buckets carry no information: drop them.
			for k, l := range a.sources {
				if l.TokensAt(now) >= float64(a.opts.ReviewBurst) {
					delete(a.sources, k)
				}
			}
		}
		l = rate.NewLimiter(rate.Limit(a.opts.ReviewsPerSecond), a.opts.ReviewBurst)
		a.sources[source] = l
	}
	return l.AllowN(now, 1)
}

// sourceOf is the remote IP address of r.
func sourceOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// tokenReview asks the API server about token.
func (a *Authenticator) tokenReview(ctx context.Context, token string) (podRef, error) {
	tr := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{a.opts.Audience}}}
	res, err := a.opts.TokenReviews.AuthenticationV1().TokenReviews().Create(ctx, tr, metav1.CreateOptions{})
	if err != nil {
		return podRef{}, fmt.Errorf("token review: %w", err)
	}
	st := res.Status
	if !st.Authenticated {
		reason := st.Error
		if reason == "" {
			reason = "the API server did not accept it"
		}
		a.log.Info("sidecar token refused", "reason", reason)
		return podRef{}, fmt.Errorf("%w: the token is invalid or expired", controlplane.ErrUnauthenticated)
	}
	if !slices.Contains(st.Audiences, a.opts.Audience) {
		return podRef{}, fmt.Errorf("%w: the token is not issued for audience %q", controlplane.ErrUnauthenticated, a.opts.Audience)
	}
	ns, sa, ok := serviceAccount(st.User.Username)
	if !ok {
		return podRef{}, fmt.Errorf("%w: the token belongs to %q, not to a service account", controlplane.ErrUnauthenticated, st.User.Username)
	}
	name, uid := first(st.User.Extra[ExtraPodName]), first(st.User.Extra[ExtraPodUID])
	if name == "" || uid == "" {
		return podRef{}, fmt.Errorf("%w: the token is not bound to a pod: mount a projected service-account token (the injected sidecar does)", controlplane.ErrUnauthenticated)
	}
	return podRef{namespace: ns, name: name, serviceAccount: sa, uid: types.UID(uid)}, nil
}

// tokenClaims are the unverified claims precheck reads.
type tokenClaims struct {
	exp time.Time
}

// precheck refuses a token that cannot be a live, pod-bound
// service-account token for audience, by its shape and unverified claims
// alone: not a JWT, another audience, expired, or bound to no pod. What
// passes still goes to a TokenReview, which verifies the signature.
func precheck(token, audience string, now time.Time) (tokenClaims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || len(token) > 16<<10 {
		return tokenClaims{}, errors.New("the bearer token is not a service-account token (a JWT)")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return tokenClaims{}, errors.New("the bearer token is not a service-account token (a JWT)")
	}
	var c struct {
		Exp any             `json:"exp"`
		Aud json.RawMessage `json:"aud"`
		K8s struct {
			Pod *struct {
				UID string `json:"uid"`
			} `json:"pod"`
		} `json:"kubernetes.io"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return tokenClaims{}, errors.New("the bearer token's claims are not JSON")
	}
	var auds []string
	var one string
	if json.Unmarshal(c.Aud, &one) == nil {
		auds = []string{one}
	} else if json.Unmarshal(c.Aud, &auds) != nil {
		auds = nil
	}
	if !slices.Contains(auds, audience) {
		return tokenClaims{}, fmt.Errorf("the token is not issued for audience %q", audience)
	}
	var out tokenClaims
	if exp, ok := c.Exp.(float64); ok && exp > 0 {
		out.exp = time.Unix(int64(exp), 0)
		if !out.exp.After(now) {
			return tokenClaims{}, errors.New("the token is expired")
		}
	}
	if c.K8s.Pod == nil || c.K8s.Pod.UID == "" {
		return tokenClaims{}, errors.New("the token is not bound to a pod: mount a projected service-account token (the injected sidecar does)")
	}
	return out, nil
}

func serviceAccount(username string) (ns, name string, ok bool) {
	rest, ok := strings.CutPrefix(username, "system:serviceaccount:")
	if !ok {
		return "", "", false
	}
	ns, name, ok = strings.Cut(rest, ":")
	return ns, name, ok && ns != "" && name != ""
}

func first(v authenticationv1.ExtraValue) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
