package servicebinding_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"ddi.dev/ddi/internal/kubetest"
)

// TestV1beta1IsV1 checks that the deprecated v1beta1 of each Service
// Binding CRD has exactly v1's schema, printer columns and subresources:
// that is what lets the API server convert without a webhook (strategy
// None) and the reconciler read every object as v1.
func TestV1beta1IsV1(t *testing.T) {
	for _, name := range []string{"servicebinding.io_servicebindings.yaml", "servicebinding.io_clusterworkloadresourcemappings.yaml"} {
		b, err := os.ReadFile(filepath.Join(kubetest.RepoRoot(), "deploy", "crd", name))
		if err != nil {
			t.Fatal(err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(b, &crd); err != nil {
			t.Fatal(err)
		}
		versions := map[string]apiextensionsv1.CustomResourceDefinitionVersion{}
		for _, v := range crd.Spec.Versions {
			versions[v.Name] = v
		}
		v1, beta := versions["v1"], versions["v1beta1"]
		if !v1.Storage || !v1.Served || beta.Storage || !beta.Served || !beta.Deprecated {
			t.Errorf("%s: v1 served %t storage %t, v1beta1 served %t storage %t deprecated %t; want v1 stored, v1beta1 served and deprecated",
				name, v1.Served, v1.Storage, beta.Served, beta.Storage, beta.Deprecated)
		}
		if crd.Spec.Conversion != nil && crd.Spec.Conversion.Strategy != apiextensionsv1.NoneConverter {
			t.Errorf("%s: conversion %v, want None", name, crd.Spec.Conversion.Strategy)
		}
		if diff := cmp.Diff(v1.Schema, beta.Schema); diff != "" {
			t.Errorf("%s: v1beta1 schema differs from v1 (-v1 +v1beta1):\n%s", name, diff)
		}
		if diff := cmp.Diff(v1.AdditionalPrinterColumns, beta.AdditionalPrinterColumns); diff != "" {
			t.Errorf("%s: v1beta1 printer columns differ (-v1 +v1beta1):\n%s", name, diff)
		}
		if diff := cmp.Diff(v1.Subresources, beta.Subresources); diff != "" {
			t.Errorf("%s: v1beta1 subresources differ (-v1 +v1beta1):\n%s", name, diff)
		}
	}
}
