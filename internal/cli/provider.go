package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"ddi.dev/ddi/internal/registry"
)

func newProviderCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "provider",
		Aliases: []string{"providers"},
		Short:   "Add, list, show and remove providers",
		Example: `  ddi provider add payments --type http --url http://127.0.0.1:9001 --version 1.2.0
  ddi provider list
  ddi provider get payments -o yaml
  ddi provider rm payments`,
	}
	cmd.AddCommand(newProviderAddCmd(g), newProviderListCmd(g), newProviderGetCmd(g), newProviderRmCmd(g))
	return cmd
}

func newProviderAddCmd(g *globals) *cobra.Command {
	var (
		p                                registry.Provider
		urls, labels, config, secrets    []string
		secretFile                       string
		scopeNS, scopeSA, scopeWorkloads []string
		ttl                              time.Duration
	)
	cmd := &cobra.Command{
		Use:   "add NAME --type TYPE --url URL",
		Short: "Add or replace a provider",
		Long: `add stores a provider in the registry (replacing one of the same name).
Every consumer whose dependency it now wins is rebound at once.

Secrets (--secret, --secret-file) reach only consumers in the provider's
scope, and never appear in listings or logs. --secret-file reads KEY=VALUE
lines (blank lines and lines starting with # are ignored). By default only
consumers in the provider's namespace may bind; widen it with
--scope-namespace (use * for all).`,
		Example: `  ddi provider add greeter --type http --url http://127.0.0.1:9001 --version 1.0.0
  ddi provider add db --type postgres --url postgres://127.0.0.1:5432/app \
      --version 15.4.0 --label tier=gold --config database=app --secret-file ./db.env`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.Name = args[0]
			if p.Type == "" {
				return fmt.Errorf("--type is required: for example http, postgresql, redis or nats")
			}
			for _, u := range urls {
				p.Endpoints = append(p.Endpoints, registry.Endpoint{URL: u, Ready: true})
			}
			var err error
			if p.Labels, err = parsePairs("--label", labels, nil); err != nil {
				return err
			}
			if p.Config, err = parsePairs("--config", config, nil); err != nil {
				return err
			}
			if secretFile != "" {
				if p.Secret, err = readSecretFile(secretFile); err != nil {
					return err
				}
			}
			if p.Secret, err = parsePairs("--secret", secrets, p.Secret); err != nil {
				return err
			}
			p.Scope = registry.Scope{Namespaces: scopeNS, ServiceAccounts: scopeSA, Workloads: scopeWorkloads}
			if ttl != 0 {
				p.Lease = &registry.Lease{TTL: registry.Duration(ttl)}
			}
			registry.NormalizeProvider(&p)
			if err := registry.ValidateProvider(&p); err != nil {
				return flagError(err)
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			stored, created, err := c.PutProvider(cmd.Context(), p)
			if err != nil {
				return err
			}
			verb := "replaced"
			if created {
				verb = "added"
			}
			fmt.Fprintf(g.stdout, "provider %s %s (type %s, version %s, revision %d)\n", stored.Key(), verb, stored.Type, orDash(stored.Version), stored.Revision)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&p.Namespace, "namespace", registry.DefaultNamespace, "namespace of the provider")
	f.StringVar(&p.Type, "type", "", "provider type: http, grpc, postgresql (or postgres), redis, nats, kafka, ... (required)")
	f.StringArrayVar(&urls, "url", nil, "endpoint URL; repeat for several endpoints")
	f.StringVar(&p.Version, "version", "", "semantic version, for example 1.4.0")
	f.StringArrayVar(&labels, "label", nil, "label KEY=VALUE; repeatable")
	f.StringArrayVar(&config, "config", nil, "non-secret config KEY=VALUE; repeatable")
	f.StringArrayVar(&secrets, "secret", nil, "secret KEY=VALUE (username, password, ...); repeatable")
	f.StringVar(&secretFile, "secret-file", "", "file of secret KEY=VALUE lines")
	f.StringArrayVar(&scopeNS, "scope-namespace", nil, "namespace whose consumers may bind (* for all); repeatable")
	f.StringArrayVar(&scopeSA, "scope-service-account", nil, "service account that may bind; repeatable")
	f.StringArrayVar(&scopeWorkloads, "scope-workload", nil, "workload (consumer name) that may bind; repeatable")
	f.DurationVar(&ttl, "ttl", 0, "expire the provider unless renewed within this time (default: never)")
	return cmd
}

func newProviderListCmd(g *globals) *cobra.Command {
	var (
		output, namespace string
	)
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List providers (secret values are never shown)",
		Example: "  ddi provider list\n  ddi provider list -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			resp, err := c.ListProviders(cmd.Context(), namespace)
			if err != nil {
				return err
			}
			list := resp.Providers
			return printOut(g.stdout, output, resp, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "NAMESPACE\tNAME\tTYPE\tVERSION\tREADY\tENDPOINTS\tLEASE\tREVISION")
				for _, p := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%d\n", p.Namespace, p.Name, p.Type, orDash(p.Version),
						len(p.ReadyEndpoints()), len(p.Endpoints), endpointList(p.Endpoints), leaseText(p.Lease), p.Revision)
				}
			})
		},
	}
	outputFlag(cmd, &output)
	cmd.Flags().StringVar(&namespace, "namespace", "", "only this namespace (default: all)")
	return cmd
}

func newProviderGetCmd(g *globals) *cobra.Command {
	var output, namespace string
	cmd := &cobra.Command{
		Use:     "get NAME",
		Short:   "Show one provider (secret values are never shown, only their keys)",
		Example: "  ddi provider get payments\n  ddi provider get payments -o yaml",
		Args:    exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			p, err := c.GetProvider(cmd.Context(), namespace, args[0])
			if err != nil {
				return err
			}
			return printOut(g.stdout, output, p, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "Name:\t%s\nNamespace:\t%s\nType:\t%s\nVersion:\t%s\nRevision:\t%d\n", p.Name, p.Namespace, p.Type, orDash(p.Version), p.Revision)
				fmt.Fprintf(tw, "Labels:\t%s\n", pairsText(p.Labels))
				fmt.Fprintf(tw, "Config:\t%s\n", pairsText(p.Config))
				fmt.Fprintf(tw, "Secret keys:\t%s\n", orDash(strings.Join(p.SecretKeys, ",")))
				fmt.Fprintf(tw, "Lease:\t%s\n", leaseText(p.Lease))
				if p.Owner != "" {
					fmt.Fprintf(tw, "Owner:\t%s\n", p.Owner)
				}
				fmt.Fprintln(tw, "Endpoints:")
				for _, e := range p.Endpoints {
					fmt.Fprintf(tw, "  %s\tready=%t\n", e.URL, e.Ready)
				}
			})
		},
	}
	outputFlag(cmd, &output)
	cmd.Flags().StringVar(&namespace, "namespace", registry.DefaultNamespace, "namespace of the provider")
	return cmd
}

func newProviderRmCmd(g *globals) *cobra.Command {
	var namespace string
	cmd := &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove providers",
		Example: "  ddi provider rm payments",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			for _, name := range args {
				if err := c.DeleteProvider(cmd.Context(), namespace, name, 0); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "provider %s removed\n", registry.Key(namespace, name))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&namespace, "namespace", registry.DefaultNamespace, "namespace of the providers")
	return cmd
}

// parsePairs parses KEY=VALUE flag values into into (allocated when nil).
func parsePairs(flag string, values []string, into map[string]string) (map[string]string, error) {
	for _, kv := range values {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: write KEY=VALUE", flag, redactPair(flag, kv))
		}
		if into == nil {
			into = map[string]string{}
		}
		into[k] = v
	}
	return into, nil
}

// redactPair keeps secret values out of error messages.
func redactPair(flag, kv string) string {
	if flag == "--secret" {
		return "(hidden)"
	}
	return kv
}

func readSecretFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--secret-file: %w", err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("--secret-file %s line %d: write KEY=VALUE", path, n)
		}
		out[strings.TrimSpace(k)] = v
	}
	return out, nil
}

func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s takes %s (got %d arguments); see --help", cmd.CommandPath(), names, len(args))
		}
		return nil
	}
}

// flagError maps a field error of the provider to the flag that sets it.
func flagError(err error) error {
	var fe *registry.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	flags := map[string]string{"name": "NAME", "namespace": "--namespace", "type": "--type", "version": "--version", "ttl": "--ttl"}
	field := fe.Field
	switch {
	case strings.HasPrefix(field, "endpoints"):
		return fmt.Errorf("--url: %w", err)
	case strings.HasPrefix(field, "labels"), field == "label key":
		return fmt.Errorf("--label: %w", err)
	case strings.HasPrefix(field, "config"):
		return fmt.Errorf("--config: %w", err)
	case strings.HasPrefix(field, "secret"):
		return fmt.Errorf("--secret: %w", err)
	case strings.HasPrefix(field, "scope"):
		return fmt.Errorf("--scope-*: %w", err)
	}
	if f, ok := flags[field]; ok {
		return fmt.Errorf("%s: %w", f, err)
	}
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func endpointList(eps []registry.Endpoint) string {
	urls := make([]string, len(eps))
	for i, e := range eps {
		urls[i] = e.URL
	}
	return orDash(strings.Join(urls, ","))
}

func leaseText(l *registry.Lease) string {
	if l == nil {
		return "-"
	}
	left := time.Until(l.ExpiresAt).Round(time.Second)
	return fmt.Sprintf("%s (expires in %s)", time.Duration(l.TTL), left)
}

func pairsText(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}
