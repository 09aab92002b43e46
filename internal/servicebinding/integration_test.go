package servicebinding_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sbv1 "ddi.dev/ddi/api/servicebinding/v1"
	"ddi.dev/ddi/internal/kubetest"
)

const wait = 20 * time.Second

// eventually retries f until it returns nil or d passes.
func eventually(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func create(t *testing.T, cp *kubetest.ControlPlane, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := cp.Client.Create(t.Context(), o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
}

func secret(ns, name string, data map[string]string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
}

func deployment(ns, name string, labels map[string]string, containers ...corev1.Container) *appsv1.Deployment {
	sel := map[string]string{"app": name}
	l := map[string]string{"app": name}
	for k, v := range labels {
		l[k] = v
	}
	if len(containers) == 0 {
		containers = []corev1.Container{{Name: "app", Image: "example.com/app:1"}}
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: l},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel}, Spec: corev1.PodSpec{Containers: containers}},
		},
	}
}

func byName(ns, name, kind, workload string) *sbv1.ServiceBinding {
	return &sbv1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: sbv1.ServiceBindingSpec{
		Workload: sbv1.ServiceBindingWorkloadReference{APIVersion: "apps/v1", Kind: "Deployment", Name: workload},
		Service:  sbv1.ServiceBindingServiceReference{APIVersion: "v1", Kind: "Secret", Name: kind},
	}}
}

// ready waits until sb's Ready condition has status and reason for its
// current generation, and returns sb as read then.
func ready(t *testing.T, cp *kubetest.ControlPlane, sb *sbv1.ServiceBinding, status metav1.ConditionStatus, reason string) *sbv1.ServiceBinding {
	t.Helper()
	var got sbv1.ServiceBinding
	eventually(t, wait, func() error {
		if err := cp.Client.Get(t.Context(), client.ObjectKeyFromObject(sb), &got); err != nil {
			return err
		}
		c := meta.FindStatusCondition(got.Status.Conditions, sbv1.ConditionReady)
		if c == nil || c.Status != status || c.Reason != reason || got.Status.ObservedGeneration != got.Generation || c.ObservedGeneration != got.Generation {
			return fmt.Errorf("ServiceBinding %s: Ready = %+v, observedGeneration %d of %d; want %s %s", sb.Name, c, got.Status.ObservedGeneration, got.Generation, status, reason)
		}
		return nil
	})
	return &got
}

// getDeployment reads a Deployment.
func getDeployment(t *testing.T, cp *kubetest.ControlPlane, ns, name string) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	if err := cp.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

// mounted returns the mount of the binding volume in c, or nil.
func mounted(c corev1.Container) *corev1.VolumeMount {
	for i, m := range c.VolumeMounts {
		if strings.HasPrefix(m.Name, "servicebinding-") {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

func env(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// projectedAt waits until every container of Deployment ns/name mounts
// the binding at path and the binding volume projects Secret secret.
func projectedAt(t *testing.T, cp *kubetest.ControlPlane, ns, name, path, secret string) *appsv1.Deployment {
	t.Helper()
	var d *appsv1.Deployment
	eventually(t, wait, func() error {
		d = getDeployment(t, cp, ns, name)
		ps := d.Spec.Template.Spec
		for _, c := range append(append([]corev1.Container{}, ps.InitContainers...), ps.Containers...) {
			m := mounted(c)
			if m == nil || m.MountPath != path || !m.ReadOnly {
				return fmt.Errorf("Deployment %s container %s: binding mount %+v, want read-only at %s", name, c.Name, m, path)
			}
		}
		for _, v := range ps.Volumes {
			if strings.HasPrefix(v.Name, "servicebinding-") {
				if v.Projected == nil || v.Projected.Sources[0].Secret == nil || v.Projected.Sources[0].Secret.Name != secret {
					return fmt.Errorf("Deployment %s: binding volume %+v, want Secret %s first", name, v, secret)
				}
				return nil
			}
		}
		return fmt.Errorf("Deployment %s has no binding volume", name)
	})
	return d
}

// unchanged waits until Deployment ns/name's pod template and annotations
// equal want's: nothing of a binding is left.
func unchanged(t *testing.T, cp *kubetest.ControlPlane, want *appsv1.Deployment) {
	t.Helper()
	eventually(t, wait, func() error {
		d := getDeployment(t, cp, want.Namespace, want.Name)
		if diff := cmp.Diff(want.Spec.Template, d.Spec.Template); diff != "" {
			return fmt.Errorf("Deployment %s pod template differs from before the binding (-before +now):\n%s", want.Name, diff)
		}
		for k := range d.Annotations {
			if strings.Contains(k, "servicebinding.ddi.dev/") {
				return fmt.Errorf("Deployment %s still has annotation %s", want.Name, k)
			}
		}
		return nil
	})
}

// event waits for an Event about sb with reason whose note contains text.
func event(t *testing.T, cp *kubetest.ControlPlane, sb *sbv1.ServiceBinding, reason, text string) {
	t.Helper()
	eventually(t, wait, func() error {
		var list eventsv1.EventList
		if err := cp.Client.List(t.Context(), &list, client.InNamespace(sb.Namespace)); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.Name == sb.Name && e.Regarding.Kind == "ServiceBinding" && e.Reason == reason && strings.Contains(e.Note, text) {
				return nil
			}
		}
		return fmt.Errorf("no Event %s mentioning %q about ServiceBinding %s among %d", reason, text, sb.Name, len(list.Items))
	})
}

// message returns sb's Ready message.
func message(sb *sbv1.ServiceBinding) string {
	return meta.FindStatusCondition(sb.Status.Conditions, sbv1.ConditionReady).Message
}

func deleteAndWait(t *testing.T, cp *kubetest.ControlPlane, obj client.Object) {
	t.Helper()
	if err := cp.Client.Delete(t.Context(), obj); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		err := cp.Client.Get(t.Context(), client.ObjectKeyFromObject(obj), obj)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("%s still there (finalizers %v, err %v)", obj.GetName(), obj.GetFinalizers(), err)
	})
}

// crd installs a namespaced custom resource definition whose objects keep
// any fields, and waits until it is served.
func crd(t *testing.T, cp *kubetest.ControlPlane, group, kind, plural string) schema.GroupVersionKind {
	t.Helper()
	preserve := true
	c := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: plural + "." + group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: group, Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: kind, Plural: plural, ListKind: kind + "List", Singular: strings.ToLower(kind)},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: &preserve}}}},
		},
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(c)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
	if err := cp.Client.Create(t.Context(), u); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	gvk := schema.GroupVersionKind{Group: group, Version: "v1", Kind: kind}
	eventually(t, wait, func() error {
		var l unstructured.UnstructuredList
		l.SetGroupVersionKind(gvk.GroupVersion().WithKind(kind + "List"))
		return cp.Client.List(t.Context(), &l)
	})
	return gvk
}

func TestServiceBinding(t *testing.T) {
	cp := kubetest.RunControlPlane(t, kubetest.Options{})
	ctx := t.Context()

	t.Run("a Secret into every container and init container", func(t *testing.T) {
		const ns = "direct"
		cp.Namespace(t, ns, nil)
		d := deployment(ns, "web", nil,
			corev1.Container{Name: "app", Image: "example.com/app:1"},
			corev1.Container{Name: "side", Image: "example.com/side:1"})
		d.Spec.Template.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "example.com/migrate:1"}}
		sb := byName(ns, "db", "db-creds", "web")
		sb.Spec.Env = []sbv1.EnvMapping{{Name: "DB_PASSWORD", Key: "password"}}
		create(t, cp, secret(ns, "db-creds", map[string]string{"type": "postgresql", "password": "s3cret"}), d, sb)

		got := ready(t, cp, sb, metav1.ConditionTrue, sbv1.ReasonProjected)
		if got.Status.Binding == nil || got.Status.Binding.Name != "db-creds" {
			t.Errorf("status.binding = %+v, want db-creds", got.Status.Binding)
		}
		if !strings.Contains(message(got), "web") {
			t.Errorf("Ready message %q does not name the workload", message(got))
		}
		w := projectedAt(t, cp, ns, "web", "/bindings/db", "db-creds")
		ps := w.Spec.Template.Spec
		for _, c := range append(ps.InitContainers, ps.Containers...) {
			if e := env(c, "SERVICE_BINDING_ROOT"); e == nil || e.Value != "/bindings" {
				t.Errorf("container %s SERVICE_BINDING_ROOT = %+v, want /bindings", c.Name, e)
			}
			e := env(c, "DB_PASSWORD")
			if e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != "db-creds" || e.ValueFrom.SecretKeyRef.Key != "password" {
				t.Errorf("container %s DB_PASSWORD = %+v, want from Secret db-creds key password", c.Name, e)
			}
		}
		if !controllerHasFinalizer(got) {
			t.Errorf("finalizers = %v, want %s", got.Finalizers, "servicebinding.ddi.dev/finalizer")
		}
		event(t, cp, sb, sbv1.ReasonProjected, "web")

		// Deleting the binding removes everything it projected.
		deleteAndWait(t, cp, sb)
		unchanged(t, cp, d)
	})

	t.Run("a Provisioned Service with spec.name, type and provider", func(t *testing.T) {
		const ns = "provisioned"
		cp.Namespace(t, ns, nil)
		gvk := crd(t, cp, "stable.example.com", "ProvisionedBackend", "provisionedbackends")
		backend := &unstructured.Unstructured{Object: map[string]any{
			"metadata": map[string]any{"namespace": ns, "name": "pg"},
			"status":   map[string]any{"binding": map[string]any{"name": "pg-secret-1"}},
		}}
		backend.SetGroupVersionKind(gvk)
		d := deployment(ns, "orders", nil)
		sb := &sbv1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders-db"}, Spec: sbv1.ServiceBindingSpec{
			Name: "db", Type: "postgresql", Provider: "acme",
			Workload: sbv1.ServiceBindingWorkloadReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "orders"},
			Service:  sbv1.ServiceBindingServiceReference{APIVersion: "stable.example.com/v1", Kind: "ProvisionedBackend", Name: "pg"},
			Env:      []sbv1.EnvMapping{{Name: "DB_TYPE", Key: "type"}, {Name: "DB_USER", Key: "username"}},
		}}
		create(t, cp, secret(ns, "pg-secret-1", map[string]string{"type": "db", "username": "u"}), secret(ns, "pg-secret-2", map[string]string{"username": "v"}), backend, d, sb)

		got := ready(t, cp, sb, metav1.ConditionTrue, sbv1.ReasonProjected)
		if got.Status.Binding == nil || got.Status.Binding.Name != "pg-secret-1" {
			t.Errorf("status.binding = %+v, want pg-secret-1 (the service's .status.binding.name)", got.Status.Binding)
		}
		w := projectedAt(t, cp, ns, "orders", "/bindings/db", "pg-secret-1")
		uid := string(got.UID)
		var vol *corev1.Volume
		for i, v := range w.Spec.Template.Spec.Volumes {
			if v.Name == "servicebinding-"+uid {
				vol = &w.Spec.Template.Spec.Volumes[i]
			}
		}
		if vol == nil || len(vol.Projected.Sources) != 2 || vol.Projected.Sources[1].DownwardAPI == nil {
			t.Fatalf("binding volume %+v, want the Secret then the type and provider overrides", vol)
		}
		paths := map[string]string{}
		for _, it := range vol.Projected.Sources[1].DownwardAPI.Items {
			paths[it.Path] = it.FieldRef.FieldPath
		}
		wantPaths := map[string]string{
			"type":     "metadata.annotations['type.servicebinding.ddi.dev/" + uid + "']",
			"provider": "metadata.annotations['provider.servicebinding.ddi.dev/" + uid + "']",
		}
		if diff := cmp.Diff(wantPaths, paths); diff != "" {
			t.Errorf("override items (-want +got):\n%s", diff)
		}
		a := w.Spec.Template.Annotations
		if a["type.servicebinding.ddi.dev/"+uid] != "postgresql" || a["provider.servicebinding.ddi.dev/"+uid] != "acme" {
			t.Errorf("pod template annotations %v, want type postgresql and provider acme", a)
		}
		c := w.Spec.Template.Spec.Containers[0]
		if e := env(c, "DB_TYPE"); e == nil || e.Value != "postgresql" {
			t.Errorf("DB_TYPE = %+v, want the override postgresql", e)
		}
		if e := env(c, "DB_USER"); e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef.Name != "pg-secret-1" {
			t.Errorf("DB_USER = %+v, want from Secret pg-secret-1", e)
		}

		// The service names another Secret: the projection follows.
		if err := unstructured.SetNestedField(backend.Object, "pg-secret-2", "status", "binding", "name"); err != nil {
			t.Fatal(err)
		}
		if err := cp.Client.Update(ctx, backend); err != nil {
			t.Fatal(err)
		}
		projectedAt(t, cp, ns, "orders", "/bindings/db", "pg-secret-2")
		eventually(t, wait, func() error {
			got := ready(t, cp, sb, metav1.ConditionTrue, sbv1.ReasonProjected)
			if got.Status.Binding == nil || got.Status.Binding.Name != "pg-secret-2" {
				return fmt.Errorf("status.binding = %+v, want pg-secret-2", got.Status.Binding)
			}
			return nil
		})
		deleteAndWait(t, cp, sb)
		unchanged(t, cp, d)
	})

	t.Run("the containers filter and a workload's own SERVICE_BINDING_ROOT", func(t *testing.T) {
		const ns = "filter"
		cp.Namespace(t, ns, nil)
		d := deployment(ns, "web", nil,
			corev1.Container{Name: "app", Image: "example.com/app:1", Env: []corev1.EnvVar{{Name: "SERVICE_BINDING_ROOT", Value: "/etc/bindings"}}},
			corev1.Container{Name: "proxy", Image: "example.com/proxy:1"})
		d.Spec.Template.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "example.com/migrate:1"}}
		sb := byName(ns, "cache", "redis", "web")
		sb.Spec.Workload.Containers = []string{"app", "migrate"}
		create(t, cp, secret(ns, "redis", map[string]string{"type": "redis"}), d, sb)
		ready(t, cp, sb, metav1.ConditionTrue, sbv1.ReasonProjected)
		w := getDeployment(t, cp, ns, "web")
		ps := w.Spec.Template.Spec
		if m := mounted(ps.Containers[0]); m == nil || m.MountPath != "/etc/bindings/cache" {
			t.Errorf("app mount = %+v, want /etc/bindings/cache (its own SERVICE_BINDING_ROOT)", m)
		}
		if e := env(ps.Containers[0], "SERVICE_BINDING_ROOT"); e == nil || e.Value != "/etc/bindings" {
			t.Errorf("app SERVICE_BINDING_ROOT = %+v, want its own /etc/bindings", e)
		}
		if m := mounted(ps.InitContainers[0]); m == nil || m.MountPath != "/bindings/cache" {
			t.Errorf("init container migrate mount = %+v, want /bindings/cache", m)
		}
		if diff := cmp.Diff(d.Spec.Template.Spec.Containers[1], ps.Containers[1]); diff != "" {
			t.Errorf("container proxy, not in spec.workload.containers, changed (-before +after):\n%s", diff)
		}
		deleteAndWait(t, cp, sb)
		unchanged(t, cp, d)
	})

	t.Run("a label selector, workloads created and relabelled later", func(t *testing.T) {
		const ns = "selector"
		cp.Namespace(t, ns, nil)
		one := deployment(ns, "one", map[string]string{"bind": "yes"})
		other := deployment(ns, "other", map[string]string{"bind": "no"})
		sb := byName(ns, "db", "creds", "")
		sb.Spec.Workload.Name = ""
		sb.Spec.Workload.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"bind": "yes"}}
		create(t, cp, secret(ns, "creds", map[string]string{"type": "db"}), one, other, sb)
		ready(t, cp, sb, metav1.ConditionTrue, sbv1.ReasonProjected)
		projectedAt(t, cp, ns, "one", "/bindings/db", "creds")

		later := deployment(ns, "later", map[string]string{"bind": "yes"})
		create(t, cp, later)
		projectedAt(t, cp, ns, "later", "/bindings/db", "creds")
		unchanged(t, cp, other)

		// Relabelled out of the selector: the projection goes.
		cur := getDeployment(t, cp, ns, "one")
		cur.Labels["bind"] = "no"
		if err := cp.Client.Update(ctx, cur); err != nil {
			t.Fatal(err)
		}
		unchanged(t, cp, one)
		projectedAt(t, cp, ns, "later", "/bindings/db", "creds")
		eventually(t, wait, func() error {
			got := ready(t, cp, sb, metav1.ConditionTrue, sbv1.ReasonProjected)
			if m := message(got); strings.Contains(m, "one") || !strings.Contains(m, "later") {
				return fmt.Errorf("Ready message %q, want later and not one", m)
			}
			return nil
		})
		deleteAndWait(t, cp, sb)
		unchanged(t, cp, later)
	})

	t.Run("a CronJob without a mapping, then with one", func(t *testing.T) {
		const ns = "cronjob"
		cp.Namespace(t, ns, nil)
		cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nightly"}, Spec: batchv1.CronJobSpec{
			Schedule: "0 3 * * *",
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "job", Image: "example.com/job:1"}},
			}}}},
		}}
		sb := byName(ns, "db", "creds", "nightly")
		sb.Spec.Workload.APIVersion, sb.Spec.Workload.Kind = "batch/v1", "CronJob"
		create(t, cp, secret(ns, "creds", map[string]string{"type": "db"}), cj, sb)
		got := ready(t, cp, sb, metav1.ConditionFalse, sbv1.ReasonInvalidMapping)
		if m := message(got); !strings.Contains(m, "ClusterWorkloadResourceMapping cronjobs.batch") {
			t.Errorf("Ready message %q does not name the mapping to create", m)
		}
		event(t, cp, sb, sbv1.ReasonInvalidMapping, "cronjobs.batch")
		var now batchv1.CronJob
		if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(cj), &now); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(cj.Spec.JobTemplate, now.Spec.JobTemplate); diff != "" || len(now.Annotations) != 0 {
			t.Errorf("a binding without a mapping changed the CronJob (-before +after):\n%s annotations %v", diff, now.Annotations)
		}

		create(t, cp, &sbv1.ClusterWorkloadResourceMapping{ObjectMeta: metav1.ObjectMeta{Name: "cronjobs.batch"},
			Spec: sbv1.ClusterWorkloadResourceMappingSpec{Versions: []sbv1.ClusterWorkloadResourceMappingTemplate{{
				Version:     "*",
				Annotations: ".spec.jobTemplate.spec.template.metadata.annotations",
				Volumes:     ".spec.jobTemplate.spec.template.spec.volumes",
				Containers: []sbv1.ClusterWorkloadResourceMappingContainer{
					{Path: ".spec.jobTemplate.spec.template.spec.initContainers[*]", Name: ".name"},
					{Path: ".spec.jobTemplate.spec.template.spec.containers[*]", Name: ".name"},
				},
			}}}})
		ready(t, cp, sb, metav1.ConditionTrue, sbv1.ReasonProjected)
		if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(cj), &now); err != nil {
			t.Fatal(err)
		}
		ps := now.Spec.JobTemplate.Spec.Template.Spec
		if m := mounted(ps.Containers[0]); m == nil || m.MountPath != "/bindings/db" || len(ps.Volumes) != 1 || ps.Volumes[0].Projected.Sources[0].Secret.Name != "creds" {
			t.Errorf("CronJob after the mapping: mount %+v, volumes %+v; want /bindings/db from Secret creds", m, ps.Volumes)
		}
		deleteAndWait(t, cp, sb)
		eventually(t, wait, func() error {
			if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(cj), &now); err != nil {
				return err
			}
			if diff := cmp.Diff(cj.Spec.JobTemplate, now.Spec.JobTemplate); diff != "" {
				return fmt.Errorf("CronJob job template after deletion differs (-before +after):\n%s", diff)
			}
			return nil
		})
	})

	t.Run("a custom resource through a mapping with an invalid JSONPath, then a fixed one", func(t *testing.T) {
		const ns = "custom"
		cp.Namespace(t, ns, nil)
		gvk := crd(t, cp, "example.com", "Function", "functions")
		fn := &unstructured.Unstructured{Object: map[string]any{
			"metadata": map[string]any{"namespace": ns, "name": "hello"},
			"spec": map[string]any{"run": map[string]any{
				"containers": []any{map[string]any{"name": "fn", "image": "example.com/fn:1"}},
			}},
		}}
		fn.SetGroupVersionKind(gvk)
		cwrm := &sbv1.ClusterWorkloadResourceMapping{ObjectMeta: metav1.ObjectMeta{Name: "functions.example.com"},
			Spec: sbv1.ClusterWorkloadResourceMappingSpec{Versions: []sbv1.ClusterWorkloadResourceMappingTemplate{{
				Version:     "v1",
				Annotations: ".spec.run.annotations",
				Volumes:     ".spec.run.volumes[*]",
				Containers:  []sbv1.ClusterWorkloadResourceMappingContainer{{Path: `.spec.run.containers[?(@.name=="fn")]`, Name: ".name"}},
			}}}}
		sb := byName(ns, "db", "creds", "hello")
		sb.Spec.Workload.APIVersion, sb.Spec.Workload.Kind = "example.com/v1", "Function"
		create(t, cp, secret(ns, "creds", map[string]string{"type": "db"}), fn, cwrm, sb)
		got := ready(t, cp, sb, metav1.ConditionFalse, sbv1.ReasonInvalidMapping)
		if m := message(got); !strings.Contains(m, "ClusterWorkloadResourceMapping functions.example.com spec.versions[0].volumes: invalid Fixed JSONPath") {
			t.Errorf("Ready message %q does not name the bad field", m)
		}
		event(t, cp, sb, sbv1.ReasonInvalidMapping, "spec.versions[0].volumes")
		before := fn.DeepCopy()
		if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(fn), fn); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(before.Object["spec"], fn.Object["spec"]); diff != "" {
			t.Errorf("an invalid mapping changed the workload (-before +after):\n%s", diff)
		}

		if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(cwrm), cwrm); err != nil {
			t.Fatal(err)
		}
		cwrm.Spec.Versions[0].Volumes = ".spec.run.volumes"
		if err := cp.Client.Update(ctx, cwrm); err != nil {
			t.Fatal(err)
		}
		ready(t, cp, sb, metav1.ConditionTrue, sbv1.ReasonProjected)
		if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(fn), fn); err != nil {
			t.Fatal(err)
		}
		mounts, _, _ := unstructured.NestedSlice(fn.Object, "spec", "run", "containers")
		if len(mounts) != 1 || !strings.Contains(fmt.Sprint(mounts[0]), "/bindings/db") {
			t.Errorf("custom resource containers after the fix: %v, want a mount at /bindings/db", mounts)
		}
		if vols, _, _ := unstructured.NestedSlice(fn.Object, "spec", "run", "volumes"); len(vols) != 1 {
			t.Errorf("custom resource volumes after the fix: %v, want the binding volume", vols)
		}

		// The mapping changes: the projection is removed through the old
		// mapping and made again through the new one.
		if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(cwrm), cwrm); err != nil {
			t.Fatal(err)
		}
		cwrm.Spec.Versions[0].Volumes = ".spec.run.extraVolumes"
		if err := cp.Client.Update(ctx, cwrm); err != nil {
			t.Fatal(err)
		}
		eventually(t, wait, func() error {
			if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(fn), fn); err != nil {
				return err
			}
			old, _, _ := unstructured.NestedSlice(fn.Object, "spec", "run", "volumes")
			moved, _, _ := unstructured.NestedSlice(fn.Object, "spec", "run", "extraVolumes")
			if len(old) != 0 || len(moved) != 1 {
				return fmt.Errorf("after the mapping changed: volumes %v, extraVolumes %v; want the binding volume moved", old, moved)
			}
			return nil
		})
		deleteAndWait(t, cp, sb)
		eventually(t, wait, func() error {
			if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(fn), fn); err != nil {
				return err
			}
			if diff := cmp.Diff(before.Object["spec"], fn.Object["spec"]); diff != "" {
				return fmt.Errorf("custom resource after deletion differs (-before +after):\n%s", diff)
			}
			return nil
		})
	})

	t.Run("a missing service, then created", func(t *testing.T) {
		const ns = "missing-service"
		cp.Namespace(t, ns, nil)
		gvk := crd(t, cp, "stable.example.com", "ProvisionedBackend", "provisionedbackends")
		d := deployment(ns, "web", nil)
		sb := byName(ns, "db", "", "web")
		sb.Spec.Service = sbv1.ServiceBindingServiceReference{APIVersion: "stable.example.com/v1", Kind: "ProvisionedBackend", Name: "pg"}
		create(t, cp, d, sb)
		got := ready(t, cp, sb, metav1.ConditionFalse, sbv1.ReasonServiceNotFound)
		if m := message(got); !strings.Contains(m, "spec.service.name") || !strings.Contains(m, "pg") {
			t.Errorf("Ready message %q does not name spec.service.name and pg", m)
		}
		event(t, cp, sb, sbv1.ReasonServiceNotFound, "spec.service.name")
		unchanged(t, cp, d)

		backend := &unstructured.Unstructured{Object: map[string]any{
			"metadata": map[string]any{"namespace": ns, "name": "pg"},
			"status":   map[string]any{"binding": map[string]any{"name": "pg-secret"}},
		}}
		backend.SetGroupVersionKind(gvk)
		create(t, cp, secret(ns, "pg-secret", map[string]string{"type": "db"}), backend)
		ready(t, cp, sb, metav1.ConditionTrue, sbv1.ReasonProjected)
		projectedAt(t, cp, ns, "web", "/bindings/db", "pg-secret")
	})

	t.Run("a Secret that does not exist yet", func(t *testing.T) {
		const ns = "missing-secret"
		cp.Namespace(t, ns, nil)
		d := deployment(ns, "web", nil)
		sb := byName(ns, "db", "later", "web")
		create(t, cp, d, sb)
		got := ready(t, cp, sb, metav1.ConditionFalse, sbv1.ReasonSecretNotFound)
		if m := message(got); !strings.Contains(m, "spec.service.name") || !strings.Contains(m, "later") {
			t.Errorf("Ready message %q does not name spec.service.name and the Secret", m)
		}
		if got.Status.Binding != nil {
			t.Errorf("status.binding = %+v before the Secret exists, want none", got.Status.Binding)
		}
		if c := meta.FindStatusCondition(got.Status.Conditions, sbv1.ConditionServiceAvailable); c == nil || c.Status != metav1.ConditionFalse || c.Reason != sbv1.ReasonSecretNotFound {
			t.Errorf("ServiceAvailable = %+v, want False SecretNotFound", c)
		}
		event(t, cp, sb, sbv1.ReasonSecretNotFound, "later")
		unchanged(t, cp, d)

		create(t, cp, secret(ns, "later", map[string]string{"type": "db"}))
		got = ready(t, cp, sb, metav1.ConditionTrue, sbv1.ReasonProjected)
		if c := meta.FindStatusCondition(got.Status.Conditions, sbv1.ConditionServiceAvailable); c == nil || c.Status != metav1.ConditionTrue {
			t.Errorf("ServiceAvailable = %+v, want True", c)
		}
		projectedAt(t, cp, ns, "web", "/bindings/db", "later")
	})

	t.Run("a servicebinding.io/v1beta1 ServiceBinding", func(t *testing.T) {
		const ns = "v1beta1"
		cp.Namespace(t, ns, nil)
		d := deployment(ns, "web", nil)
		create(t, cp, secret(ns, "creds", map[string]string{"type": "db"}), d)
		beta := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "servicebinding.io/v1beta1", "kind": "ServiceBinding",
			"metadata": map[string]any{"namespace": ns, "name": "db"},
			"spec": map[string]any{
				"service":  map[string]any{"apiVersion": "v1", "kind": "Secret", "name": "creds"},
				"workload": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
			},
		}}
		if err := cp.Client.Create(ctx, beta); err != nil {
			t.Fatal(err)
		}
		sb := &sbv1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}}
		ready(t, cp, sb, metav1.ConditionTrue, sbv1.ReasonProjected)
		projectedAt(t, cp, ns, "web", "/bindings/db", "creds")
		// Read back as v1beta1, the status is there too.
		eventually(t, wait, func() error {
			if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(beta), beta); err != nil {
				return err
			}
			if name, _, _ := unstructured.NestedString(beta.Object, "status", "binding", "name"); name != "creds" {
				return fmt.Errorf("v1beta1 status.binding.name = %q, want creds", name)
			}
			return nil
		})
		deleteAndWait(t, cp, beta)
		unchanged(t, cp, d)
	})

	t.Run("a service without .status.binding.name, then provisioned", func(t *testing.T) {
		const ns = "unprovisioned"
		cp.Namespace(t, ns, nil)
		gvk := crd(t, cp, "stable.example.com", "ProvisionedBackend", "provisionedbackends")
		backend := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"namespace": ns, "name": "pg"}}}
		backend.SetGroupVersionKind(gvk)
		d := deployment(ns, "web", nil)
		sb := byName(ns, "db", "", "web")
		sb.Spec.Service = sbv1.ServiceBindingServiceReference{APIVersion: "stable.example.com/v1", Kind: "ProvisionedBackend", Name: "pg"}
		create(t, cp, secret(ns, "pg-secret", map[string]string{"type": "db"}), backend, d, sb)
		got := ready(t, cp, sb, metav1.ConditionFalse, sbv1.ReasonServiceNotProvisioned)
		if m := message(got); !strings.Contains(m, "spec.service") || !strings.Contains(m, ".status.binding.name") {
			t.Errorf("Ready message %q does not name spec.service and .status.binding.name", m)
		}
		event(t, cp, sb, sbv1.ReasonServiceNotProvisioned, "pg")
		unchanged(t, cp, d)

		if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(backend), backend); err != nil {
			t.Fatal(err)
		}
		if err := unstructured.SetNestedField(backend.Object, "pg-secret", "status", "binding", "name"); err != nil {
			t.Fatal(err)
		}
		if err := cp.Client.Update(ctx, backend); err != nil {
			t.Fatal(err)
		}
		ready(t, cp, sb, metav1.ConditionTrue, sbv1.ReasonProjected)
		projectedAt(t, cp, ns, "web", "/bindings/db", "pg-secret")
	})

	t.Run("a workload that does not exist yet", func(t *testing.T) {
		const ns = "missing-workload"
		cp.Namespace(t, ns, nil)
		sb := byName(ns, "db", "creds", "web")
		create(t, cp, secret(ns, "creds", map[string]string{"type": "db"}), sb)
		got := ready(t, cp, sb, metav1.ConditionFalse, sbv1.ReasonWorkloadNotFound)
		if m := message(got); !strings.Contains(m, "spec.workload.name") || !strings.Contains(m, "web") {
			t.Errorf("Ready message %q does not name spec.workload.name and web", m)
		}
		event(t, cp, sb, sbv1.ReasonWorkloadNotFound, "spec.workload.name")
		create(t, cp, deployment(ns, "web", nil))
		ready(t, cp, sb, metav1.ConditionTrue, sbv1.ReasonProjected)
		projectedAt(t, cp, ns, "web", "/bindings/db", "creds")
	})

	t.Run("no partial projection: one of two selected workloads cannot be bound", func(t *testing.T) {
		const ns = "partial"
		cp.Namespace(t, ns, nil)
		good := deployment(ns, "good", map[string]string{"bind": "yes"})
		bad := deployment(ns, "bad", map[string]string{"bind": "yes"},
			corev1.Container{Name: "app", Image: "example.com/app:1", Env: []corev1.EnvVar{{Name: "DB_PASSWORD", Value: "its-own"}}})
		sb := byName(ns, "db", "creds", "")
		sb.Spec.Workload.Name = ""
		sb.Spec.Workload.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"bind": "yes"}}
		sb.Spec.Env = []sbv1.EnvMapping{{Name: "DB_PASSWORD", Key: "password"}}
		create(t, cp, secret(ns, "creds", map[string]string{"type": "db", "password": "p"}), good, bad, sb)
		got := ready(t, cp, sb, metav1.ConditionFalse, sbv1.ReasonInvalidMapping)
		if m := message(got); !strings.Contains(m, "spec.env[0].name") || !strings.Contains(m, "bad") {
			t.Errorf("Ready message %q does not name spec.env[0].name and the workload bad", m)
		}
		event(t, cp, sb, sbv1.ReasonInvalidMapping, "spec.env[0].name")
		unchanged(t, cp, good)
		unchanged(t, cp, bad)

		// The fix: another variable name.
		if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(sb), sb); err != nil {
			t.Fatal(err)
		}
		sb.Spec.Env[0].Name = "BINDING_PASSWORD"
		if err := cp.Client.Update(ctx, sb); err != nil {
			t.Fatal(err)
		}
		ready(t, cp, sb, metav1.ConditionTrue, sbv1.ReasonProjected)
		projectedAt(t, cp, ns, "good", "/bindings/db", "creds")
		w := projectedAt(t, cp, ns, "bad", "/bindings/db", "creds")
		if e := env(w.Spec.Template.Spec.Containers[0], "DB_PASSWORD"); e == nil || e.Value != "its-own" {
			t.Errorf("the workload's own DB_PASSWORD = %+v, want its-own kept", e)
		}
	})

	t.Run("a service kind the API server does not serve", func(t *testing.T) {
		const ns = "unserved"
		cp.Namespace(t, ns, nil)
		d := deployment(ns, "web", nil)
		sb := byName(ns, "db", "", "web")
		sb.Spec.Service = sbv1.ServiceBindingServiceReference{APIVersion: "nowhere.example.com/v1", Kind: "Database", Name: "pg"}
		create(t, cp, d, sb)
		got := ready(t, cp, sb, metav1.ConditionFalse, sbv1.ReasonServiceNotFound)
		if m := message(got); !strings.Contains(m, "spec.service") || !strings.Contains(m, "Database") {
			t.Errorf("Ready message %q does not name spec.service and the kind", m)
		}
		event(t, cp, sb, sbv1.ReasonServiceNotFound, "Database")
		unchanged(t, cp, d)

		// Its CRD is installed and the service created: the binding
		// converges (the kind is retried; its watch starts then).
		gvk := crd(t, cp, "nowhere.example.com", "Database", "databases")
		db := &unstructured.Unstructured{Object: map[string]any{
			"metadata": map[string]any{"namespace": ns, "name": "pg"},
			"status":   map[string]any{"binding": map[string]any{"name": "pg-secret"}},
		}}
		db.SetGroupVersionKind(gvk)
		create(t, cp, secret(ns, "pg-secret", map[string]string{"type": "db"}), db)
		ready(t, cp, sb, metav1.ConditionTrue, sbv1.ReasonProjected)
		projectedAt(t, cp, ns, "web", "/bindings/db", "pg-secret")
	})

	t.Run("the API server rejects a binding name that is not a path segment", func(t *testing.T) {
		sb := byName("default", "dots", "creds", "web")
		sb.Spec.Name = ".."
		err := cp.Client.Create(ctx, sb)
		if err == nil || !strings.Contains(err.Error(), "spec.name must match") {
			t.Errorf("create with spec.name ..: %v, want the spec.name rule", err)
		}
	})

	t.Run("the API server rejects a workload with both name and selector", func(t *testing.T) {
		sb := byName("default", "both", "creds", "web")
		sb.Spec.Workload.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}
		err := cp.Client.Create(ctx, sb)
		if err == nil || !strings.Contains(err.Error(), "spec.workload: set exactly one of name") {
			t.Errorf("create with name and selector: %v, want the spec.workload rule", err)
		}
	})
}

func controllerHasFinalizer(sb *sbv1.ServiceBinding) bool {
	for _, f := range sb.Finalizers {
		if f == "servicebinding.ddi.dev/finalizer" {
			return true
		}
	}
	return false
}
