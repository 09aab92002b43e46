package registry

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Rule names the step of resolution that admitted, rejected or ranked a
// candidate provider (docs/resolution.md, "The rules, in order").
type Rule string

// The rules, in the order resolution applies them.
const (
	// RuleNamespace: the provider is not in the namespace the selector
	// looks in (rules 1 and 2).
	RuleNamespace Rule = "namespace"
	// RuleType: the provider has another type (rule 2).
	RuleType Rule = "type"
	// RuleVersion: the provider's version is outside the range (rule 2).
	RuleVersion Rule = "version"
	// RuleLabels: the provider lacks a label of the selector (rule 2).
	RuleLabels Rule = "labels"
	// RuleScope: the provider's scope does not admit the consumer (rule 3).
	RuleScope Rule = "scope"
	// RuleReadiness: the provider has no ready endpoint (rule 4).
	RuleReadiness Rule = "readiness"
	// RuleHighestVersion: among admitted providers the highest version
	// wins (rule 5).
	RuleHighestVersion Rule = "highest-version"
	// RuleTieBreak: among equal versions, the consumer's own namespace,
	// then the smallest namespace/name (rule 6).
	RuleTieBreak Rule = "tie-break"
)

// ruleOrder ranks rules for sorting rejected candidates.
var ruleOrder = map[Rule]int{RuleType: 1, RuleNamespace: 2, RuleVersion: 3, RuleLabels: 4, RuleScope: 5, RuleReadiness: 6}

// Explanation is a resolution with its reasons: every candidate provider
// the rules considered, the rule that admitted or rejected it, and why the
// chosen one won. Explain builds it by running Resolve's own code.
type Explanation struct {
	Consumer   Consumer `json:"consumer"`
	Dependency string   `json:"dependency"`
	Selector   string   `json:"selector"`
	// Namespace is where the selector looks: a namespace, or "*" for
	// every namespace that exports to the consumer.
	Namespace string `json:"namespace"`
	// Candidates lists the chosen provider first, then the other admitted
	// providers in rank order, then the rejected ones in rule order.
	Candidates []Candidate `json:"candidates"`
	// Chosen is the winner's namespace/name; empty when unresolved.
	Chosen string `json:"chosen,omitempty"`
	// Unresolved is the reason there is no winner (the ResolveError's
	// reason); empty when resolved.
	Unresolved string `json:"unresolved,omitempty"`
	// Hidden counts candidates left out because the caller may not see
	// them (a sidecar sees only its own namespace and providers exported
	// to it).
	Hidden int `json:"hidden,omitempty"`
	// Split explains each target of a weighted traffic split, in declared
	// order; the explanation itself then has no candidates, and Chosen is
	// the primary target's provider.
	Split []TargetExplanation `json:"split,omitempty"`
}

// TargetExplanation is the explanation of one target of a split, with
// its declared weight and the share of invocations it receives.
type TargetExplanation struct {
	Weight  int  `json:"weight"`
	Share   int  `json:"share"`
	Primary bool `json:"primary,omitempty"`
	Explanation
}

// Candidate is one provider as resolution saw it.
type Candidate struct {
	Provider string            `json:"provider"` // namespace/name
	Type     string            `json:"type"`
	Version  string            `json:"version,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	// Owner is set on run-time registrations; Lease is their lease. An
	// expired lease is no rule: the store deletes the provider, and it is
	// no longer a candidate.
	Owner string `json:"owner,omitempty"`
	Lease *Lease `json:"lease,omitempty"`
	// Ready and Endpoints count ready and all endpoints.
	Ready     int `json:"ready"`
	Endpoints int `json:"endpoints"`
	// Admitted is true when the candidate passed rules 1 to 4.
	Admitted bool `json:"admitted"`
	// Chosen marks the winner.
	Chosen bool `json:"chosen,omitempty"`
	// Rank orders admitted candidates, 1 for the winner; 0 when rejected.
	Rank int `json:"rank,omitempty"`
	// Rule rejected the candidate, or (admitted, not chosen) ranked it
	// below the winner; for the winner, the rule that decided against the
	// runner-up (empty when it was the only one).
	Rule Rule `json:"rule,omitempty"`
	// Detail says what the rule found, in words.
	Detail string `json:"detail"`
}

// Explain resolves dependency dep of consumer c among providers exactly as
// Resolve does (the same code, recording as it goes), and returns every
// decision. Resolve(c, dep, providers) chooses Explanation.Chosen, or
// fails with Explanation.Unresolved as its reason.
func Explain(c Consumer, dep Dependency, providers []*Provider) Explanation {
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	rec := &recorder{ex: Explanation{Consumer: c, Dependency: dep.Alias, Selector: dep.Selector.String(), Candidates: []Candidate{}}}
	_, _ = resolve(c, dep, providers, rec)
	return rec.ex
}

// ExplainDependency is Explain for a dependency that may be a split:
// candidates returns the providers a selector can match. A split is
// explained target by target, each with Resolve's own code, and the
// shares are those BindSplit gives.
func ExplainDependency(c Consumer, dep Dependency, candidates func(Selector) []*Provider) Explanation {
	if !dep.IsSplit() {
		return Explain(c, dep, candidates(dep.Selector))
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	ex := Explanation{Consumer: c, Dependency: dep.Alias, Selector: dep.SelectorString(), Candidates: []Candidate{}}
	providers := make([]*Provider, len(dep.Split))
	errs := make([]error, len(dep.Split))
	for i, t := range dep.Split {
		one := Dependency{Alias: dep.Alias, Selector: t.Selector}
		cands := candidates(t.Selector)
		providers[i], errs[i] = Resolve(c, one, cands)
		ex.Split = append(ex.Split, TargetExplanation{Weight: t.Weight, Explanation: Explain(c, one, cands)})
	}
	b, err := BindSplit(dep, providers, errs, false)
	if err != nil {
		var re *ResolveError
		if errors.As(err, &re) {
			ex.Unresolved = re.Reason
		}
		return ex
	}
	for i, st := range b.Split {
		ex.Split[i].Share, ex.Split[i].Primary = st.Share, st.Primary
		if st.Primary {
			ex.Chosen = Key(st.Namespace, st.Provider)
		}
	}
	return ex
}

// recorder collects Explain's decisions. Its methods do nothing on a nil
// recorder, which is what Resolve passes.
type recorder struct {
	ex       Explanation
	admitted []admittedCandidate
}

type admittedCandidate struct {
	p *Provider
	v Version
}

func newCandidate(p *Provider) Candidate {
	return Candidate{
		Provider:  p.Key(),
		Type:      p.Type,
		Version:   p.Version,
		Labels:    p.Labels,
		Owner:     p.Owner,
		Lease:     p.Lease,
		Ready:     len(p.ReadyEndpoints()),
		Endpoints: len(p.Endpoints),
	}
}

func (r *recorder) looksIn(ns string) {
	if r != nil {
		r.ex.Namespace = ns
	}
}

// reject records that rule rejected p; detail is called only when
// recording.
func (r *recorder) reject(p *Provider, rule Rule, detail func() string) {
	if r == nil {
		return
	}
	c := newCandidate(p)
	c.Rule, c.Detail = rule, detail()
	r.ex.Candidates = append(r.ex.Candidates, c)
}

func (r *recorder) admit(p *Provider, v Version) {
	if r != nil {
		r.admitted = append(r.admitted, admittedCandidate{p, v})
	}
}

// fail records an unresolved outcome and returns err.
func (r *recorder) fail(err error) error {
	if r == nil {
		return err
	}
	var re *ResolveError
	if errors.As(err, &re) {
		r.ex.Unresolved = re.Reason
	} else {
		r.ex.Unresolved = err.Error()
	}
	r.sort()
	return err
}

// choose records that best won, ranks the admitted candidates with the
// same comparison resolution used, and says why each lost. It returns nil.
func (r *recorder) choose(best *Provider, cns string) error {
	if r == nil {
		return nil
	}
	r.ex.Chosen = best.Key()
	slices.SortStableFunc(r.admitted, func(a, b admittedCandidate) int {
		switch {
		case a.p == b.p:
			return 0
		case better(a.p, a.v, b.p, b.v, cns):
			return -1
		}
		return 1
	})
	out := make([]Candidate, 0, len(r.admitted)+len(r.ex.Candidates))
	w := r.admitted[0]
	for i, a := range r.admitted {
		c := newCandidate(a.p)
		c.Admitted, c.Rank = true, i+1
		if i == 0 {
			c.Chosen = true
			c.Detail = "chosen: passed every rule"
			if len(r.admitted) > 1 {
				c.Rule, c.Detail = lostTo(r.admitted[1], w, cns)
				c.Detail = "chosen over " + r.admitted[1].p.Key() + ": " + c.Detail
			}
		} else {
			var why string
			c.Rule, why = lostTo(a, w, cns)
			c.Detail = "lost to " + w.p.Key() + ": " + why
		}
		out = append(out, c)
	}
	r.sort()
	r.ex.Candidates = append(out, r.ex.Candidates...)
	return nil
}

// lostTo says which rule ranks a below the winner w, and how.
func lostTo(a, w admittedCandidate, cns string) (Rule, string) {
	if c := a.v.Compare(w.v); c != 0 {
		return RuleHighestVersion, fmt.Sprintf("version %s is higher than %s", versionText(w.p), versionText(a.p))
	}
	if (w.p.Namespace == cns) != (a.p.Namespace == cns) {
		return RuleTieBreak, fmt.Sprintf("both at version %s; %s is in the consumer's namespace %s", versionText(w.p), w.p.Key(), cns)
	}
	return RuleTieBreak, fmt.Sprintf("both at version %s; %s sorts before %s", versionText(w.p), w.p.Key(), a.p.Key())
}

// sort orders the rejected candidates recorded so far by rule, then name.
func (r *recorder) sort() {
	slices.SortStableFunc(r.ex.Candidates, func(a, b Candidate) int {
		if d := ruleOrder[a.Rule] - ruleOrder[b.Rule]; d != 0 {
			return d
		}
		return strings.Compare(a.Provider, b.Provider)
	})
}

func versionText(p *Provider) string {
	if p.Version == "" {
		return "0.0.0 (none given)"
	}
	return p.Version
}

func missingLabels(have, want map[string]string) string {
	var miss []string
	for k, v := range want {
		if got, ok := have[k]; !ok {
			miss = append(miss, k+"="+v+" (absent)")
		} else if got != v {
			miss = append(miss, k+"="+v+" (has "+k+"="+got+")")
		}
	}
	slices.Sort(miss)
	return "lacks label " + strings.Join(miss, ", ")
}

func scopeDetail(p *Provider, c Consumer, field string) string {
	s := &p.Scope
	switch field {
	case "namespaces":
		if len(s.Namespaces) == 0 {
			return "scope admits only its own namespace " + p.Namespace + ", not the consumer's " + c.Namespace
		}
		return "scope.namespaces [" + strings.Join(s.Namespaces, ", ") + "] does not list the consumer's namespace " + c.Namespace
	case "serviceAccounts":
		return "scope.serviceAccounts [" + strings.Join(s.ServiceAccounts, ", ") + "] does not list the consumer's service account " + fmt.Sprintf("%q", c.ServiceAccount)
	case "workloads":
		return "scope.workloads [" + strings.Join(s.Workloads, ", ") + "] does not list the consumer " + c.Name
	}
	return "scope.workloadLabels " + formatLabels(s.WorkloadLabels) + " do not all match the consumer's labels"
}

func readinessDetail(p *Provider) string {
	if len(p.Endpoints) == 0 {
		return "no endpoint"
	}
	return fmt.Sprintf("0 of %d endpoints ready", len(p.Endpoints))
}

// Visible drops the candidates a caller may not see: those of namespaces
// other than ns that the consumer's scope check did not reach or refused
// (a sidecar reads only its own namespace, and providers that export
// themselves to it). It counts them in Hidden.
func (e *Explanation) Visible(ns string) {
	for i := range e.Split {
		e.Split[i].Visible(ns)
		e.Hidden += e.Split[i].Hidden
	}
	kept := e.Candidates[:0]
	for _, c := range e.Candidates {
		cns, _, _ := strings.Cut(c.Provider, "/")
		if cns == ns || c.Admitted || c.Rule == RuleReadiness {
			kept = append(kept, c)
			continue
		}
		e.Hidden++
	}
	e.Candidates = kept
}
