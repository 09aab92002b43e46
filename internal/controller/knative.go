package controller

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ddi.dev/ddi/api/v1alpha1"
	"ddi.dev/ddi/internal/registry"
)

// The Knative Serving kinds the Provider reconciler reads.
var (
	knativeServiceGVK  = schema.GroupVersionKind{Group: "serving.knative.dev", Version: "v1", Kind: "Service"}
	knativeRevisionGVK = schema.GroupVersionKind{Group: "serving.knative.dev", Version: "v1", Kind: "Revision"}
)

// DefaultKnativeDiscovery is how often the controller asks the API server
// whether it serves Knative Services, until it does.
const DefaultKnativeDiscovery = 30 * time.Second

// knativeRevisions is what a Provider on a Knative Service publishes from
// the Service's revisions.
type knativeRevisions struct {
	// primary is the revision that receives the largest share of the
	// traffic (the first listed among equals), or the latest ready
	// revision when the Service reports no traffic yet.
	primary string
	// version is the primary's ddi.dev/version annotation.
	version string
	// traffic is the split, the primary first; nil without a route.
	traffic []v1alpha1.RevisionTraffic
	// problems are annotations that are no semantic version and
	// revisions that could not be read, said for people.
	problems []string
	// unread is set when a revision could not be read yet.
	unread bool
}

// line formats the split for the knative-traffic config entry and the
// Provider's status: "80% greeter-00002 2.0.0, 20% greeter-00001 1.0.0",
// "-" for a revision without a version.
func (k knativeRevisions) line() string {
	parts := make([]string, len(k.traffic))
	for i, t := range k.traffic {
		v := t.Version
		if v == "" {
			v = "-"
		}
		parts[i] = fmt.Sprintf("%d%% %s %s", t.Percent, t.RevisionName, v)
	}
	return strings.Join(parts, ", ")
}

// trafficSplit reads a Knative Service's status.traffic: the revisions
// that receive a share of the traffic, each once (a revision listed twice,
// by name and as the latest, gets the sum), in order of their share, the
// order Knative lists them in among equals. Entries of 0 percent (tags
// only) are left out: they receive nothing through the Service's address.
func trafficSplit(ksvc map[string]any) []v1alpha1.RevisionTraffic {
	entries, _, _ := unstructured.NestedSlice(ksvc, "status", "traffic")
	latest, _, _ := unstructured.NestedString(ksvc, "status", "latestReadyRevisionName")
	var out []v1alpha1.RevisionTraffic
	for _, e := range entries {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		pct, _, _ := unstructured.NestedInt64(m, "percent")
		name, _, _ := unstructured.NestedString(m, "revisionName")
		if isLatest, _, _ := unstructured.NestedBool(m, "latestRevision"); name == "" && isLatest {
			name = latest
		}
		if pct <= 0 || pct > 100 || name == "" {
			continue
		}
		if i := slices.IndexFunc(out, func(t v1alpha1.RevisionTraffic) bool { return t.RevisionName == name }); i >= 0 {
			out[i].Percent = min(100, out[i].Percent+int32(pct))
			continue
		}
		out = append(out, v1alpha1.RevisionTraffic{RevisionName: name, Percent: int32(pct)})
	}
	slices.SortStableFunc(out, func(a, b v1alpha1.RevisionTraffic) int { return cmp.Compare(b.Percent, a.Percent) })
	if len(out) > 64 {
		out = out[:64] // the CRD's bound; Knative itself has far fewer
	}
	return out
}

// revisions reads which revisions a Knative Service routes its traffic to
// and the version of each (its ddi.dev/version annotation, which Knative
// copies from spec.template.metadata to the Revision).
func (r *ProviderReconciler) revisions(ctx context.Context, ns string, ksvc map[string]any) (knativeRevisions, error) {
	k := knativeRevisions{traffic: trafficSplit(ksvc)}
	if len(k.traffic) > 0 {
		k.primary = k.traffic[0].RevisionName
	} else {
		k.primary, _, _ = unstructured.NestedString(ksvc, "status", "latestReadyRevisionName")
	}
	if k.primary == "" {
		return k, nil
	}
	versions := map[string]string{}
	for _, name := range append([]string{k.primary}, revisionNames(k.traffic)...) {
		if _, done := versions[name]; done {
			continue
		}
		v, problem, missing, err := r.revisionVersion(ctx, ns, name)
		if err != nil {
			return k, err
		}
		versions[name] = v
		k.unread = k.unread || missing
		if problem != "" {
			k.problems = append(k.problems, problem)
		}
	}
	k.version = versions[k.primary]
	for i := range k.traffic {
		k.traffic[i].Version = versions[k.traffic[i].RevisionName]
	}
	return k, nil
}

func revisionNames(ts []v1alpha1.RevisionTraffic) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.RevisionName
	}
	return out
}

// revisionVersion reads the ddi.dev/version annotation of Knative
// Revision ns/name. A missing annotation is no version; one that is not a
// semantic version is no version and a problem to report; so is a
// Revision not there (yet), which sets missing.
func (r *ProviderReconciler) revisionVersion(ctx context.Context, ns, name string) (version, problem string, missing bool, err error) {
	rev := &unstructured.Unstructured{}
	rev.SetGroupVersionKind(knativeRevisionGVK)
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, rev); err != nil {
		if apierrors.IsNotFound(err) {
			return "", fmt.Sprintf("Knative Revision %s was not found", name), true, nil
		}
		return "", "", false, fmt.Errorf("read Knative Revision %s/%s: %w", ns, name, err)
	}
	v := rev.GetAnnotations()[v1alpha1.AnnotationVersion]
	if v == "" {
		return "", "", false, nil
	}
	if _, err := registry.ParseVersion(v); err != nil || len(v) > 128 {
		return "", fmt.Sprintf("Knative Revision %s has %s %q, which is not a semantic version such as 2.0.0", name, v1alpha1.AnnotationVersion, v), false, nil
	}
	return v, "", false, nil
}

// knativeServed reports whether the API server serves Knative Services.
func knativeServed(dc discovery.DiscoveryInterface) (bool, error) {
	list, err := dc.ServerResourcesForGroupVersion(knativeServiceGVK.GroupVersion().String())
	if err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	for _, res := range list.APIResources {
		if res.Kind == knativeServiceGVK.Kind && !strings.Contains(res.Name, "/") {
			return true, nil
		}
	}
	return false, nil
}

// knativeFollower starts the watch of Knative Services once the API
// server serves them: at start when Knative Serving is installed, else
// when its CRDs appear, asked of discovery every interval (never again
// when interval is 0). It runs on the leader, with the reconcilers; until
// Knative is there, the controller runs as usual, and Providers on Knative
// Services say ServiceNotFound.
type knativeFollower struct {
	discovery discovery.DiscoveryInterface
	interval  time.Duration
	watch     func() error
	log       *slog.Logger
}

// Start asks discovery until Knative Services are served, then starts the
// watch and returns.
func (f *knativeFollower) Start(ctx context.Context) error {
	for {
		served, err := knativeServed(f.discovery)
		switch {
		case err != nil:
			f.log.Warn("ask discovery whether Knative Serving is installed", "err", err)
		case served:
			if err := f.watch(); err != nil {
				return fmt.Errorf("watch Knative Services: %w", err)
			}
			f.log.Info("following Knative Services")
			return nil
		}
		if f.interval <= 0 {
			f.log.Info("Knative Serving is not installed; Providers on Knative Services will not be followed", "knative_discovery", "0")
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(f.interval):
		}
	}
}

// NeedLeaderElection is true: the watch feeds the Provider reconciler,
// which runs on the leader.
func (f *knativeFollower) NeedLeaderElection() bool { return true }
