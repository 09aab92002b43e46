package podauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ddi.dev/ddi/internal/controlplane"
)

// People reach the control plane with their own Kubernetes credentials
// (`ddi status`, `ddi resolve`, `ddi provider`, `ddi dashboard` through a
// kubeconfig): the bearer token their kubeconfig presents to the API
// server. It is told apart from a sidecar's by its audience: a token whose
// unverified claims name the sidecar audience ("ddi") is a pod's and takes
// the pod path only; any other token is a user's. A user's token is
// verified by a TokenReview with the API server's own audience, and each
// route asks a SubjectAccessReview of the user's RBAC
// (controlplane.Caller.Allowed). A user is never an admin and never a
// sidecar: no stream, no write.

// accessTTL is how long a SubjectAccessReview's answer is remembered for
// one token and one access; RBAC changes reach the control plane within
// it.
const accessTTL = 10 * time.Second

// cachedUser is a remembered TokenReview of a user's token: the user, or
// a refusal (err).
type cachedUser struct {
	user    authenticationv1.UserInfo
	err     error
	expires time.Time
}

// accessKey names a remembered SubjectAccessReview: a token's hash and
// the access.
type accessKey struct {
	token [32]byte
	acc   controlplane.Access
}

type cachedAccess struct {
	allowed bool
	expires time.Time
}

// isPodToken reports whether token's unverified claims name audience: a
// sidecar's projected token, which only the pod path may accept.
func isPodToken(token, audience string) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return false
	}
	var c struct {
		Aud json.RawMessage `json:"aud"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return false
	}
	var one string
	var auds []string
	if json.Unmarshal(c.Aud, &one) == nil {
		auds = []string{one}
	} else if json.Unmarshal(c.Aud, &auds) != nil {
		return false
	}
	return slices.Contains(auds, audience)
}

// userCaller verifies a user's token and returns the caller whose Allowed
// asks the API server about the user's RBAC.
func (a *Authenticator) userCaller(ctx context.Context, r *http.Request, token string) (controlplane.Caller, error) {
	u, err := a.reviewUser(ctx, token, sourceOf(r))
	if err != nil {
		return controlplane.Caller{}, err
	}
	key := sha256.Sum256([]byte(token))
	return controlplane.Caller{
		User: u.Username,
		Allowed: func(ctx context.Context, acc controlplane.Access) (bool, error) {
			return a.allowed(ctx, key, u, acc)
		},
	}, nil
}

// reviewUser runs (or remembers) the TokenReview of a user's token, with
// the API server's own audience. Verified users are remembered for
// Options.CacheTTL (never past a JWT's expiry), refusals for refusalTTL;
// reviews count against the source address's budget like a sidecar's.
func (a *Authenticator) reviewUser(ctx context.Context, token, source string) (authenticationv1.UserInfo, error) {
	return a.reviewAs(ctx, token, source, "")
}

// reviewAs is reviewUser for tokens of audience (empty: the API
// server's own), remembered apart for each audience.
func (a *Authenticator) reviewAs(ctx context.Context, token, source, audience string) (authenticationv1.UserInfo, error) {
	if len(token) > 16<<10 {
		return authenticationv1.UserInfo{}, fmt.Errorf("%w: the bearer token is longer than 16 KiB", controlplane.ErrUnauthenticated)
	}
	key := sha256.Sum256(append([]byte("user\x00"+audience+"\x00"), token...))
	now := time.Now()
	a.mu.Lock()
	c, ok := a.users[key]
	if ok && now.After(c.expires) {
		delete(a.users, key)
		ok = false
	}
	a.mu.Unlock()
	if ok {
		return c.user, c.err
	}
	exp := jwtExpiry(token)
	if !exp.IsZero() && !exp.After(now) {
		return authenticationv1.UserInfo{}, fmt.Errorf("%w: the token is expired: log in again (kubectl will refresh it)", controlplane.ErrUnauthenticated)
	}
	if !a.allow(source, now) {
		return authenticationv1.UserInfo{}, fmt.Errorf("%w %s", controlplane.ErrThrottled, source)
	}
	spec := authenticationv1.TokenReviewSpec{Token: token}
	if audience != "" {
		spec.Audiences = []string{audience}
	}
	res, err := a.opts.TokenReviews.AuthenticationV1().TokenReviews().Create(ctx,
		&authenticationv1.TokenReview{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		return authenticationv1.UserInfo{}, fmt.Errorf("token review: %w", err) // not the token's fault, not remembered
	}
	var u authenticationv1.UserInfo
	expires := now.Add(a.opts.CacheTTL)
	switch {
	case res.Status.Authenticated && res.Status.User.Username == "":
		// Caller.User must name someone: an empty one would read as no
		// user at all.
		err = fmt.Errorf("%w: the API server accepted the token but names no user", controlplane.ErrUnauthenticated)
		expires = now.Add(refusalTTL)
	case res.Status.Authenticated && audience != "" && !slices.Contains(res.Status.Audiences, audience):
		err = fmt.Errorf("%w: the token is not issued for audience %q", controlplane.ErrUnauthenticated, audience)
		expires = now.Add(refusalTTL)
	case res.Status.Authenticated:
		u = res.Status.User
	case audience != "":
		a.log.Info("token refused", "audience", audience, "reason", res.Status.Error)
		err = fmt.Errorf("%w: the Kubernetes API server does not accept the token for audience %q (expired, or not for this cluster)", controlplane.ErrUnauthenticated, audience)
		expires = now.Add(refusalTTL)
	default:
		a.log.Info("user token refused", "reason", res.Status.Error)
		err = fmt.Errorf("%w: the Kubernetes API server does not accept the token your kubeconfig sent (expired, or not for this cluster)", controlplane.ErrUnauthenticated)
		expires = now.Add(refusalTTL)
	}
	if !exp.IsZero() && exp.Before(expires) {
		expires = exp
	}
	a.mu.Lock()
	if len(a.users) > 100_000 {
		clear(a.users)
	}
	a.users[key] = cachedUser{user: u, err: err, expires: expires}
	a.mu.Unlock()
	return u, err
}

// VerifyReplica reports whether r comes from another replica of the
// controller (controlplane.Replicas.Verify): its bearer token must be a
// token of Options.ReplicaAudience that the API server verifies
// (TokenReview) for the service account Options.ReplicaServiceAccount,
// the controller's own. Anyone else, a sidecar or a person included, is
// refused with ErrForbidden once identified (ErrUnauthenticated when not).
func (a *Authenticator) VerifyReplica(ctx context.Context, r *http.Request) error {
	token, ok := bearer(r)
	if !ok {
		return fmt.Errorf("%w: only the controller's replicas call this route, with their service account's token for audience %q", controlplane.ErrUnauthenticated, a.opts.ReplicaAudience)
	}
	if a.opts.ReplicaAudience == "" || a.opts.ReplicaServiceAccount == "" {
		return fmt.Errorf("%w: this controller accepts no other replicas", controlplane.ErrForbidden)
	}
	if !isPodToken(token, a.opts.ReplicaAudience) {
		// A sidecar's or a person's token: say who was refused.
		c, err := a.Caller(ctx, r)
		if err != nil {
			return err
		}
		who := c.User
		if who == "" {
			who = "the sidecar of " + c.Owner
		}
		return fmt.Errorf("%w: only the controller's replicas (service account %s) call this route; %s is not one", controlplane.ErrForbidden, a.opts.ReplicaServiceAccount, who)
	}
	u, err := a.reviewAs(ctx, token, sourceOf(r), a.opts.ReplicaAudience)
	if err != nil {
		return err
	}
	if u.Username != a.opts.ReplicaServiceAccount {
		return fmt.Errorf("%w: only the controller's replicas (service account %s) call this route; %s is not one", controlplane.ErrForbidden, a.opts.ReplicaServiceAccount, u.Username)
	}
	return nil
}

// allowed asks (or remembers for accessTTL) a SubjectAccessReview: may u
// do acc?
func (a *Authenticator) allowed(ctx context.Context, token [32]byte, u authenticationv1.UserInfo, acc controlplane.Access) (bool, error) {
	k := accessKey{token, acc}
	now := time.Now()
	a.mu.Lock()
	c, ok := a.access[k]
	a.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.allowed, nil
	}
	extra := make(map[string]authorizationv1.ExtraValue, len(u.Extra))
	for k, v := range u.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: u.Username, Groups: u.Groups, UID: u.UID, Extra: extra,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: acc.Namespace, Verb: acc.Verb, Group: acc.Group, Resource: acc.Resource, Name: acc.Name,
		},
	}}
	res, err := a.opts.TokenReviews.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("subject access review: %w", err)
	}
	a.mu.Lock()
	if len(a.access) > 100_000 {
		clear(a.access)
	}
	a.access[k] = cachedAccess{allowed: res.Status.Allowed, expires: now.Add(accessTTL)}
	a.mu.Unlock()
	return res.Status.Allowed, nil
}

// jwtExpiry is the unverified exp claim of a JWT, zero for other tokens.
func jwtExpiry(token string) time.Time {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}
	}
	var c struct {
		Exp any `json:"exp"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return time.Time{}
	}
	if exp, ok := c.Exp.(float64); ok && exp > 0 {
		return time.Unix(int64(exp), 0)
	}
	return time.Time{}
}

// errUserWrite refuses a write by a user: people change Provider objects
// with kubectl, under their own RBAC; the control plane's write routes
// take sidecars' run-time registrations only.
var errUserWrite = errors.New("people change providers as Provider objects (kubectl apply -f provider.yaml), under their own Kubernetes RBAC; the control plane's write routes take run-time registrations from sidecars only")
