package kubetest

import (
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// InstallKnative installs stand-ins for Knative Serving's Service and
// Revision CRDs (serving.knative.dev/v1, namespaced, with a status
// subresource, keeping every field) and waits until they are served. No
// Knative controller runs: tests write the objects' status themselves, as
// Knative's would.
func (cp *ControlPlane) InstallKnative(t testing.TB) {
	t.Helper()
	crd := func(kind, plural string) *apiextensionsv1.CustomResourceDefinition {
		return &apiextensionsv1.CustomResourceDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: plural + ".serving.knative.dev"},
			Spec: apiextensionsv1.CustomResourceDefinitionSpec{
				Group: "serving.knative.dev",
				Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: kind, ListKind: kind + "List", Plural: plural, Singular: plural[:len(plural)-1]},
				Scope: apiextensionsv1.NamespaceScoped,
				Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
					Name: "v1", Served: true, Storage: true,
					Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
					Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
						Type: "object", XPreserveUnknownFields: ptr.To(true)}},
				}},
			},
		}
	}
	if _, err := envtest.InstallCRDs(cp.Config, envtest.CRDInstallOptions{CRDs: []*apiextensionsv1.CustomResourceDefinition{
		crd("Service", "services"), crd("Revision", "revisions")}}); err != nil {
		t.Fatalf("kubetest: install Knative's CRDs: %v", err)
	}
}
