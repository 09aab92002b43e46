package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/flowcontrol"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"ddi.dev/ddi/internal/httpapi"
	"ddi.dev/ddi/internal/inject"
)

// Path is where the handler is served; deploy/webhook names it.
const Path = "/inject-pod"

// maxReviewBytes bounds an AdmissionReview body; the API server's own limit
// on an object is 3 MiB, and a review carries at most two objects.
const maxReviewBytes = 7 << 20

// The checks of Event subjects (Options.Objects): how long one may take,
// and how many the handler makes per second (with bursts), so that a flood
// of reviews cannot turn into a flood of reads of the API server.
const (
	checkTimeout = 2 * time.Second
	checkQPS     = 10
	checkBurst   = 50
)

// Event reasons the webhook records.
const (
	ReasonSkipped = "InjectionSkipped"
	ReasonFailed  = "InjectionFailed"
)

// EventRecorder records Events; client-go's events.EventRecorder (what a
// controller-runtime manager's GetEventRecorder returns) satisfies it.
type EventRecorder interface {
	Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// NamespaceLabeler returns the labels of a namespace.
type NamespaceLabeler interface {
	NamespaceLabels(ctx context.Context, name string) (map[string]string, error)
}

// Options configure a Handler.
type Options struct {
	// Config is the injector's configuration; NativeSidecars is replaced
	// on every request by what Native reports, when Native is set.
	Config inject.Config
	// Namespaces looks up namespace labels. Required.
	Namespaces NamespaceLabeler
	// Native reports whether the cluster supports native sidecars (see
	// ServerVersion). Nil keeps Config.NativeSidecars.
	Native func(ctx context.Context) bool
	// ControlPlaneCA returns the PEM bundle injected sidecars must trust
	// for the control plane (Config.ControlPlaneCA). It is called on every
	// admission, so a rotated CA reaches the next pod; Certs.CABundle is
	// one. Nil keeps Config.ControlPlaneCA.
	ControlPlaneCA func() []byte
	// Events records skipped pods. Nil records nothing.
	Events EventRecorder
	// Objects confirms that the controller of a skipped pod exists, with
	// the UID the pod names, before an Event is recorded about it. Nil
	// records no Events.
	Objects ObjectChecker
	Logger  *slog.Logger
}

// Handler is the Pod mutating admission webhook, an http.Handler.
//
// Anyone who reaches the webhook's port may POST it an AdmissionReview,
// and nothing in the request proves that the API server sent it (the API
// server presents no client certificate unless its admission
// configuration says so, which ddi cannot rely on). Answering a forged
// review harms nothing: the answer goes back to its sender. The only
// thing the handler writes is an Event about a skipped pod, and it never
// writes one from the request alone:
//
//   - A pod being created has no UID yet, and often no name. An Event
//     about it could name any object in any namespace, so there is none:
//     the handler puts the reason into the response as a warning, which
//     kubectl shows to whoever created the pod.
//   - A pod created by a controller (ReplicaSet, Job, StatefulSet...)
//     names it in its controller reference. The handler records the Event
//     about that controller only after reading it from the API server
//     (Options.Objects) and finding the UID the pod names; reads are
//     rate-limited. A forger must therefore know the UID of an existing
//     workload object, which only those who may read it do, and can then
//     at most add an Event about a skipped injection to it.
//   - Dry-run requests record nothing.
type Handler struct {
	cfg     inject.Config
	ns      NamespaceLabeler
	native  func(ctx context.Context) bool
	ca      func() []byte
	events  EventRecorder
	objects ObjectChecker
	checks  flowcontrol.RateLimiter
	log     *slog.Logger
}

// NewHandler checks opts and returns a Handler.
func NewHandler(opts Options) (*Handler, error) {
	if opts.Namespaces == nil {
		return nil, fmt.Errorf("webhook: Options.Namespaces is required")
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	h := &Handler{cfg: opts.Config, ns: opts.Namespaces, native: opts.Native, ca: opts.ControlPlaneCA, events: opts.Events, objects: opts.Objects,
		checks: flowcontrol.NewTokenBucketRateLimiter(checkQPS, checkBurst), log: opts.Logger}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h, nil
}

// skip is an Event to record about a skipped pod's controller, once the
// controller is confirmed.
type skip struct {
	namespace string
	owner     metav1.OwnerReference
	eventType string
	reason    string
	note      string
}

// ServeHTTP answers one AdmissionReview. A body that is not a v1
// AdmissionReview with a request gets HTTP 400 and a problem document that
// says what is wrong; everything else gets HTTP 200 and an AdmissionReview
// response, as the API server expects.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httpapi.WriteProblem(w, httpapi.NewProblem(http.StatusMethodNotAllowed, "method-not-allowed", "POST an admission.k8s.io/v1 AdmissionReview to "+Path))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			httpapi.WriteProblem(w, httpapi.NewProblem(http.StatusUnsupportedMediaType, "unsupported-media-type",
				fmt.Sprintf("Content-Type %q is not application/json: the webhook reads JSON AdmissionReviews only", ct)))
			return
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReviewBytes+1))
	if err != nil {
		httpapi.WriteProblem(w, httpapi.NewProblem(http.StatusBadRequest, "unreadable-body", "reading the request body failed: "+err.Error()))
		return
	}
	if len(body) > maxReviewBytes {
		httpapi.WriteProblem(w, httpapi.NewProblem(http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("the AdmissionReview is larger than %d bytes", maxReviewBytes)))
		return
	}
	review, prob := decodeReview(body)
	if prob != nil {
		httpapi.WriteProblem(w, prob)
		return
	}
	start := time.Now()
	resp, sk := h.review(r.Context(), review.Request)
	dryRun := review.Request.DryRun != nil && *review.Request.DryRun
	if sk != nil && !dryRun {
		h.record(r.Context(), sk)
	}
	resp.UID = review.Request.UID
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: &resp.AdmissionResponse}
	// Complete fills a missing Result and serialises the patch.
	if err := resp.Complete(admission.Request{AdmissionRequest: *review.Request}); err != nil {
		resp = admission.Errored(http.StatusInternalServerError, err)
		resp.UID = review.Request.UID
		out.Response = &resp.AdmissionResponse
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	h.log.Debug("admission reviewed", "uid", review.Request.UID, "namespace", review.Request.Namespace,
		"allowed", resp.Allowed, "patches", len(resp.Patches), "took", time.Since(start))
}

// record records the Event of a skipped pod about its controller, if the
// controller exists with the UID the pod names (see Handler). client-go's
// recorder queues the Event and writes it from its own goroutine.
func (h *Handler) record(ctx context.Context, sk *skip) {
	if h.events == nil || h.objects == nil {
		return
	}
	log := h.log.With("namespace", sk.namespace, "kind", sk.owner.Kind, "name", sk.owner.Name)
	if !h.checks.TryAccept() {
		log.Debug("too many skipped pods to check their controllers: no Event")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	ok, err := h.objects.Exists(ctx, sk.namespace, sk.owner)
	switch {
	case err != nil:
		log.Info("cannot confirm the controller of a skipped pod: no Event", "err", err)
		return
	case !ok:
		log.Warn("an AdmissionReview names a controller that does not exist with that UID: no Event (was it sent by the API server?)", "uid", sk.owner.UID)
		return
	}
	regarding := &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: sk.owner.APIVersion, Kind: sk.owner.Kind},
		ObjectMeta: metav1.ObjectMeta{Namespace: sk.namespace, Name: sk.owner.Name, UID: sk.owner.UID},
	}
	h.events.Eventf(regarding, nil, sk.eventType, sk.reason, "Inject", "%s", sk.note)
}

// decodeReview parses an admission.k8s.io/v1 AdmissionReview request.
func decodeReview(body []byte) (*admissionv1.AdmissionReview, *httpapi.Problem) {
	bad := func(detail string) *httpapi.Problem {
		return httpapi.NewProblem(http.StatusBadRequest, "malformed-admission-review", detail)
	}
	if len(body) == 0 {
		return nil, bad("the request body is empty: POST an admission.k8s.io/v1 AdmissionReview")
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return nil, bad("the body is not a JSON AdmissionReview: " + err.Error())
	}
	if review.APIVersion != admissionv1.SchemeGroupVersion.String() || review.Kind != "AdmissionReview" {
		return nil, bad(fmt.Sprintf("apiVersion %q, kind %q: want apiVersion admission.k8s.io/v1, kind AdmissionReview (the webhook configuration lists only v1 in admissionReviewVersions)",
			review.APIVersion, review.Kind))
	}
	if review.Request == nil {
		return nil, bad("the AdmissionReview has no request")
	}
	if review.Request.UID == "" {
		return nil, bad("request.uid is empty")
	}
	return &review, nil
}

var podResource = metav1.GroupVersionResource{Version: "v1", Resource: "pods"}

// review decides one request. It performs no writes.
func (h *Handler) review(ctx context.Context, req *admissionv1.AdmissionRequest) (admission.Response, *skip) {
	if req.Resource != podResource || req.SubResource != "" || req.Operation != admissionv1.Create {
		return admission.Allowed("ddi injects pods on create only"), nil
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("request.object is not a Pod: %w", err)), nil
	}
	ns := req.Namespace
	if ns == "" {
		ns = pod.Namespace
	}
	if pod.Namespace != "" && pod.Namespace != ns {
		// The API server never sends this.
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("request.namespace %q is not the pod's namespace %q", ns, pod.Namespace)), nil
	}
	nsLabels, err := h.ns.NamespaceLabels(ctx, ns)
	if err != nil {
		h.log.Error("namespace lookup failed", "namespace", ns, "err", err)
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("ddi webhook: read labels of namespace %s: %w", ns, err)), nil
	}
	d := inject.Evaluate(nsLabels, &pod)
	if !d.Inject {
		if d.Asked && !d.Injected {
			note := "ddi sidecar not injected: " + d.Reason
			return admission.Allowed(d.Reason).WithWarnings(note), skipEvent(ns, &pod, corev1.EventTypeNormal, ReasonSkipped, note)
		}
		return admission.Allowed(d.Reason), nil
	}
	cfg := h.cfg
	if h.native != nil {
		cfg.NativeSidecars = h.native(ctx)
	}
	if h.ca != nil {
		cfg.ControlPlaneCA = string(h.ca())
	}
	mutated := pod.DeepCopy()
	if _, err := inject.Pod(mutated, cfg); err != nil {
		// A pod that asked for the sidecar and cannot have it does not
		// start without it: the message says what to fix.
		resp := admission.Denied("ddi sidecar injection failed: " + err.Error())
		return resp, skipEvent(ns, &pod, corev1.EventTypeWarning, ReasonFailed, "ddi sidecar injection failed: "+err.Error())
	}
	raw, err := json.Marshal(mutated)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("encode injected pod: %w", err)), nil
	}
	return admission.PatchResponseFromRaw(req.Object.Raw, raw), nil
}

// skipEvent returns the Event for a skipped pod, about the pod's
// controller (the ReplicaSet, Job, StatefulSet...), or nil for a pod
// without one: a pod being created has no UID and often no name, so an
// Event about it could not be checked (see Handler); its creator sees the
// response's warning or denial instead.
func skipEvent(ns string, pod *corev1.Pod, eventType, reason, note string) *skip {
	ref := metav1.GetControllerOf(pod)
	if ref == nil || ref.Name == "" || ref.UID == "" {
		return nil
	}
	return &skip{namespace: ns, owner: *ref, eventType: eventType, reason: reason, note: note}
}
