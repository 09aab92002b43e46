package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"ddi.dev/ddi/internal/registry"
)

func newResolveCmd(g *globals) *cobra.Command {
	var (
		output, namespace, serviceAccount string
		explain                           bool
	)
	cmd := &cobra.Command{
		Use:   "resolve CONSUMER ALIAS=SELECTOR",
		Short: "Show which provider a consumer's dependency resolves to",
		Long: `resolve asks the control plane which provider the dependency would bind to
for CONSUMER, with the rules of docs/resolution.md (scope, readiness, highest
version, tie-break). SELECTOR is a provider name (greeter), NAMESPACE/NAME,
or TYPE@RANGE[,KEY=VALUE...] (postgresql@^15,tier=gold); a bare ALIAS
without "=" looks up a provider of that name. A weighted traffic split,
W%SELECTOR,W%SELECTOR... (90%greeter-v1,10%greeter-v2: weights from 0 to
100 adding up to 100), shows every target with its weight, the share of
invocations it receives (an unresolved target's weight goes to the others
in proportion) and its provider; the primary, the resolved target with the
highest weight, is what binding files and typed clients get.

--explain lists every candidate provider instead: the chosen one first,
then the others that passed every filter in rank order (with the rule that
ranked them below it: highest version, then the tie-break), then the
rejected ones with the rule that rejected them (type, namespace, version,
labels, scope, readiness). An unresolved dependency is explained too, and
exits 0.`,
		Example: `  ddi resolve frontend greeter=http@^1
  ddi resolve frontend greeter=http@^1 --explain
  ddi resolve orders db=postgresql@>=15,tier=gold -o json
  ddi resolve frontend greeter=90%greeter-v1,10%greeter-v2`,
		Args: exactArgs(2, "CONSUMER and ALIAS=SELECTOR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := registry.ValidateName("CONSUMER", args[0]); err != nil {
				return err
			}
			dep := args[1]
			if !strings.Contains(dep, "=") {
				dep = dep + "=" + dep
			}
			if _, err := registry.ParseDependency(dep); err != nil {
				return err
			}
			consumer := registry.Consumer{Namespace: namespace, Name: args[0], ServiceAccount: serviceAccount}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			if explain {
				ex, err := c.Explain(cmd.Context(), consumer, dep)
				if err != nil {
					return err
				}
				return printOut(g.stdout, output, ex, func(tw *tabwriter.Writer) { printExplanation(tw, ex.Explanation) })
			}
			b, err := c.Resolve(cmd.Context(), consumer, dep)
			if err != nil {
				return err
			}
			return printOut(g.stdout, output, b, func(tw *tabwriter.Writer) {
				if len(b.Split) > 0 {
					printSplit(tw, b)
					return
				}
				fmt.Fprintln(tw, "DEPENDENCY\tPROVIDER\tTYPE\tVERSION\tENDPOINTS\tSELECTOR")
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", b.Name, registry.Key(b.Namespace, b.Provider), b.Type, orDash(b.Version), endpointList(b.Endpoints), b.Selector)
			})
		},
	}
	outputFlag(cmd, &output)
	cmd.Flags().StringVar(&namespace, "namespace", registry.DefaultNamespace, "namespace of the consumer")
	cmd.Flags().StringVar(&serviceAccount, "service-account", "", "service account of the consumer (for scope checks)")
	cmd.Flags().BoolVar(&explain, "explain", false, "list every candidate provider with the rule that admitted or rejected it")
	return cmd
}

// printSplit writes the binding of a split: a summary line naming the
// primary, then one row per target with its declared weight, the share of
// invocations it receives and its provider, or why it has none.
func printSplit(tw *tabwriter.Writer, b registry.Binding) {
	fmt.Fprintf(tw, "%s=%s splits invocations; primary (binding files, typed clients): %s\n\n", b.Name, b.Selector, registry.Key(b.Namespace, b.Provider))
	fmt.Fprintln(tw, "WEIGHT\tSHARE\tTARGET\tPROVIDER\tVERSION\tENDPOINTS")
	for _, st := range b.Split {
		provider, eps := "-", "-"
		if st.Provider != "" {
			provider, eps = registry.Key(st.Namespace, st.Provider), endpointList(st.Endpoints)
			if st.Primary {
				provider += " (primary)"
			}
		} else {
			eps = "unresolved: " + st.Unresolved
		}
		fmt.Fprintf(tw, "%d%%\t%d%%\t%s\t%s\t%s\t%s\n", st.Weight, st.Share, st.Selector, provider, orDash(st.Version), eps)
	}
}

// printExplanation writes an explanation as a summary line and a table.
func printExplanation(tw *tabwriter.Writer, ex registry.Explanation) {
	if len(ex.Split) > 0 {
		fmt.Fprintf(tw, "%s=%s for %s splits invocations\n", ex.Dependency, ex.Selector, registry.Key(ex.Consumer.Namespace, ex.Consumer.Name))
		if ex.Chosen != "" {
			fmt.Fprintf(tw, "primary: %s\n", ex.Chosen)
		} else {
			fmt.Fprintf(tw, "unresolved: %s\n", ex.Unresolved)
		}
		for _, te := range ex.Split {
			primary := ""
			if te.Primary {
				primary = ", primary"
			}
			fmt.Fprintf(tw, "\ntarget %s: weight %d%%, share %d%%%s\n", te.Selector, te.Weight, te.Share, primary)
			printExplanation(tw, te.Explanation)
		}
		return
	}
	where := "namespace " + ex.Namespace
	if ex.Namespace == registry.AnyNamespace {
		where = "every namespace that exports to it"
	}
	fmt.Fprintf(tw, "%s=%s for %s looks in %s\n", ex.Dependency, ex.Selector, registry.Key(ex.Consumer.Namespace, ex.Consumer.Name), where)
	if ex.Chosen != "" {
		fmt.Fprintf(tw, "chosen: %s\n", ex.Chosen)
	} else {
		fmt.Fprintf(tw, "unresolved: %s\n", ex.Unresolved)
	}
	if ex.Hidden > 0 {
		fmt.Fprintf(tw, "(%d candidate(s) of other namespaces not shown)\n", ex.Hidden)
	}
	if len(ex.Candidates) == 0 {
		fmt.Fprintln(tw, "no candidate provider")
		return
	}
	fmt.Fprintln(tw, "\nRANK\tPROVIDER\tVERSION\tREADY\tRULE\tWHY")
	for _, c := range ex.Candidates {
		rank := "-"
		switch {
		case c.Chosen:
			rank = "1*"
		case c.Admitted:
			rank = fmt.Sprint(c.Rank)
		}
		ready := fmt.Sprintf("%d/%d", c.Ready, c.Endpoints)
		if c.Lease != nil {
			ready += " (lease)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", rank, c.Provider, orDash(c.Version), ready, orDash(string(c.Rule)), c.Detail)
	}
}

func newStatusCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "status",
		Short:   "Show the sidecars connected to the control plane and what they acknowledged",
		Example: "  ddi status\n  ddi status -o yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			l, err := c.SidecarList(cmd.Context())
			if err != nil {
				return err
			}
			return printOut(g.stdout, output, l, func(tw *tabwriter.Writer) {
				// With several controller replicas, each sidecar's
				// replica, and every replica that did not answer.
				if len(l.Replicas) == 0 {
					fmt.Fprintln(tw, "SIDECAR\tCONSUMER\tDEPENDENCIES\tSENT\tACKED\tSINCE")
				} else {
					fmt.Fprintln(tw, "SIDECAR\tCONSUMER\tDEPENDENCIES\tSENT\tACKED\tSINCE\tREPLICA")
				}
				for _, s := range l.Sidecars {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s", s.ID, registry.Key(s.Consumer.Namespace, s.Consumer.Name),
						orDash(strings.Join(s.Dependencies, ";")), s.SentVersion, s.AckedVersion, s.ConnectedAt.Format("15:04:05"))
					if len(l.Replicas) > 0 {
						fmt.Fprintf(tw, "\t%s", orDash(s.Replica))
					}
					fmt.Fprintln(tw)
				}
				for _, r := range l.Replicas {
					switch {
					case r.Error != "" && r.Name == "":
						fmt.Fprintf(g.stderr, "warning: %s: sidecars of other controller replicas are missing\n", r.Error)
					case r.Error != "":
						fmt.Fprintf(g.stderr, "warning: controller replica %s did not answer (%s): its sidecars are missing\n", r.Name, r.Error)
					}
				}
			})
		},
	}
	outputFlag(cmd, &output)
	return cmd
}
