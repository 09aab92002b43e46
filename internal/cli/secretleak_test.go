package cli

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ddi.dev/ddi/internal/controlplane"
	"ddi.dev/ddi/internal/leaktest"
)

// TestSecretsDoNotLeakLocally runs the released commands against a local
// control plane with secrets of known, unique values (canaries) and looks
// for them everywhere a secret must not go: the output of every command
// in every format, the control plane's debug log, the debug logs of two
// sidecars, every /metrics, the API of a function that did not declare the
// provider, the reasons of unresolved dependencies and the errors of
// refused input. The function that declares the provider must receive
// every canary, in binding files that others cannot read, so that the
// canaries were in play.
func TestSecretsDoNotLeakLocally(t *testing.T) {
	canaries := map[string]string{
		"db password":            leaktest.Canary(),
		"db token (secret file)": leaktest.Canary(),
		"vault key":              leaktest.Canary(),
		"registered password":    leaktest.Canary(),
		"refused URL password":   leaktest.Canary(),
		"refused secret flag":    leaktest.Canary(),
		"refused registration":   leaktest.Canary(),
	}
	var cpLog leaktest.Buffer
	cp := startLoggedControlPlane(t, &cpLog)

	var outputs []leakSource
	ddi := func(name string, args ...string) (string, error) {
		t.Helper()
		out, errOut, err := run(t, append([]string{"--control-plane", cp}, args...)...)
		outputs = append(outputs, leakSource{name: "ddi " + name + " (stdout)", text: out}, leakSource{name: "ddi " + name + " (stderr)", text: errOut})
		if err != nil {
			outputs = append(outputs, leakSource{name: "ddi " + name + " (error)", text: err.Error()})
		}
		return out, err
	}
	mustDDI := func(name string, args ...string) string {
		t.Helper()
		out, err := ddi(name, args...)
		if err != nil {
			t.Fatalf("ddi %s = %v, want success", name, err)
		}
		return out
	}

	secretFile := filepath.Join(t.TempDir(), "db.env")
	if err := os.WriteFile(secretFile, []byte("# db credentials\ntoken="+canaries["db token (secret file)"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustDDI("provider add db", "provider", "add", "db", "--type", "postgres", "--version", "15.4.0",
		"--url", "postgres://orders@127.0.0.1:5432/app", "--config", "sslmode=disable",
		"--secret", "password="+canaries["db password"], "--secret-file", secretFile)
	mustDDI("provider add vault", "provider", "add", "vault", "--type", "http", "--url", "http://127.0.0.1:8200",
		"--secret", "key="+canaries["vault key"], "--scope-workload", "orders")
	mustDDI("provider add greeter", "provider", "add", "greeter", "--type", "http", "--url", "http://127.0.0.1:9")

	// Refused input must not echo the secret it carried.
	if _, err := ddi("provider add with a password in --url", "provider", "add", "leaky", "--type", "postgres",
		"--url", "postgres://u:"+canaries["refused URL password"]+"@127.0.0.1:5432/app"); err == nil {
		t.Errorf("provider add with a password in --url = success, want an error")
	}
	if _, err := ddi("provider add with a malformed --secret", "provider", "add", "leaky", "--type", "http",
		"--secret", canaries["refused secret flag"]); err == nil {
		t.Errorf("provider add --secret VALUE (no KEY=) = success, want an error")
	}

	// Two functions, each with its own sidecar logging at debug level:
	// orders declares db and vault (in its scope) and cache (registered
	// below); other declares greeter and vault, whose scope excludes it.
	orders := startFunction(t, cp, "orders", "--dep", "db=db", "--dep", "vault=vault", "--dep", "cache=cache")
	other := startFunction(t, cp, "other", "--dep", "g=greeter", "--dep", "vault=vault")

	// A run-time registration with a secret, through orders' sidecar; and
	// one the sidecar refuses, with a password in its endpoint URL.
	code, body := httpDo(t, http.MethodPut, orders.addr+"/v1/providers/cache",
		`{"type":"redis","version":"7.2.0","endpoints":[{"url":"redis://127.0.0.1:6379"}],"secret":{"password":"`+canaries["registered password"]+`"}}`)
	if code != http.StatusCreated {
		t.Fatalf("PUT orders /v1/providers/cache = %d %s, want 201", code, body)
	}
	outputs = append(outputs, leakSource{name: "orders PUT /v1/providers/cache", text: body})
	code, body = httpDo(t, http.MethodPut, orders.addr+"/v1/providers/leaky",
		`{"type":"redis","endpoints":[{"url":"redis://u:`+canaries["refused registration"]+`@127.0.0.1:6379"}]}`)
	if code != http.StatusBadRequest {
		t.Errorf("PUT orders /v1/providers/leaky with a password in the URL = %d %s, want 400", code, body)
	}
	outputs = append(outputs, leakSource{name: "orders PUT /v1/providers/leaky (refused)", text: body})

	// orders receives every secret of its scope, as files others cannot
	// read; the files that hold no secret stay readable.
	secretFiles := []struct {
		path, want string
	}{
		{path: "db/password", want: canaries["db password"]},
		{path: "db/token", want: canaries["db token (secret file)"]},
		{path: "vault/key", want: canaries["vault key"]},
		{path: "cache/password", want: canaries["registered password"]},
	}
	for _, f := range secretFiles {
		path := filepath.Join(orders.root, f.path)
		if got := waitFileContent(t, path, f.want); got != f.want {
			t.Errorf("%s = %q, want the provider's secret %q", path, got, f.want)
			continue
		}
		if fi, err := os.Stat(path); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm()&0o007 != 0 {
			t.Errorf("mode of %s = %v, want no access for others", path, fi.Mode().Perm())
		}
	}
	for _, f := range []string{"db/type", "db/provider", "db/host", "db/port", "db/username", "db/database", "db/sslmode", "vault/uri"} {
		path := filepath.Join(orders.root, f)
		if fi, err := os.Stat(path); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm()&0o444 != 0o444 {
			t.Errorf("mode of %s = %v, want readable by everyone (it holds no secret)", path, fi.Mode().Perm())
		}
	}
	_, ordersBindings := httpDo(t, http.MethodGet, orders.addr+"/v1/bindings", "")
	if !strings.Contains(ordersBindings, canaries["db password"]) {
		t.Errorf("orders GET /v1/bindings = %s, want db with its password", ordersBindings)
	}

	// other sees neither db (not declared) nor vault (out of its scope).
	code, body = httpDo(t, http.MethodGet, other.addr+"/v1/bindings", "")
	var list struct {
		Bindings   []struct{ Name string }         `json:"bindings"`
		Unresolved []struct{ Name, Reason string } `json:"unresolved"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil || code != http.StatusOK {
		t.Fatalf("other GET /v1/bindings = %d %s (%v), want 200 with a binding list", code, body, err)
	}
	if len(list.Bindings) != 1 || list.Bindings[0].Name != "g" || len(list.Unresolved) != 1 || list.Unresolved[0].Name != "vault" || list.Unresolved[0].Reason == "" {
		t.Errorf("other GET /v1/bindings = %s, want g bound and vault unresolved with a reason", body)
	}
	outputs = append(outputs, leakSource{name: "other GET /v1/bindings", text: body})
	for _, name := range []string{"db", "vault"} {
		code, body := httpDo(t, http.MethodGet, other.addr+"/v1/bindings/"+name, "")
		if code != http.StatusNotFound {
			t.Errorf("other GET /v1/bindings/%s = %d %s, want 404", name, code, body)
		}
		outputs = append(outputs, leakSource{name: "other GET /v1/bindings/" + name, text: body})
	}
	outputs = append(outputs, leakSource{name: "other's binding files", text: leaktest.TreeText(t, other.root)})

	// What the control plane shows, in every format.
	for _, format := range []string{"table", "json", "yaml"} {
		out := mustDDI("provider list -o "+format, "provider", "list", "-o", format)
		if !strings.Contains(out, "vault") || !strings.Contains(out, "cache") {
			t.Errorf("ddi provider list -o %s = %q, want db, vault and cache", format, out)
		}
		for _, p := range []string{"db", "vault", "cache"} {
			out := mustDDI("provider get "+p+" -o "+format, "provider", "get", p, "-o", format)
			if !strings.Contains(out, "password") && !strings.Contains(out, "key") {
				t.Errorf("ddi provider get %s -o %s = %q, want its secret keys", p, format, out)
			}
		}
		out = mustDDI("status -o "+format, "status", "-o", format)
		if !strings.Contains(out, "orders") || !strings.Contains(out, "other") {
			t.Errorf("ddi status -o %s = %q, want both sidecars", format, out)
		}
		mustDDI("resolve orders db=db -o "+format, "resolve", "orders", "db=db", "-o", format)
		mustDDI("resolve orders vault=vault -o "+format, "resolve", "orders", "vault=vault", "-o", format)
	}
	if _, err := ddi("resolve other vault=vault (out of scope)", "resolve", "other", "vault=vault"); err == nil {
		t.Errorf("ddi resolve other vault=vault = success, want an error (other is out of vault's scope)")
	}
	if _, err := ddi("resolve other db=postgresql@^16 (no match)", "resolve", "other", "db=postgresql@^16"); err == nil {
		t.Errorf("ddi resolve other db=postgresql@^16 = success, want an error")
	}

	// Metrics of all three, while the sidecars run.
	for _, m := range []struct{ name, url string }{
		{name: "control plane /metrics", url: cp + "/metrics"},
		{name: "orders sidecar /metrics", url: orders.addr + "/metrics"},
		{name: "other sidecar /metrics", url: other.addr + "/metrics"},
	} {
		code, body := httpDo(t, http.MethodGet, m.url, "")
		if code != http.StatusOK || !strings.Contains(body, "# TYPE") {
			t.Errorf("GET %s = %d, want 200 with metrics", m.url, code)
		}
		outputs = append(outputs, leakSource{name: m.name, text: body})
	}

	// The logs, once the functions ended and their sidecars stopped.
	orders.stop(t)
	other.stop(t)
	for _, s := range []struct {
		name, text, want string
	}{
		{name: "orders sidecar log (ddi run stderr)", text: orders.stderr.String(), want: "level=DEBUG"},
		{name: "other sidecar log (ddi run stderr)", text: other.stderr.String(), want: "level=DEBUG"},
		{name: "control plane log", text: cpLog.String(), want: "provider stored"},
	} {
		if !strings.Contains(s.text, s.want) {
			t.Errorf("%s = %q, want lines with %q (the log must be captured at debug level)", s.name, s.text, s.want)
		}
		outputs = append(outputs, leakSource{name: s.name, text: s.text})
	}
	outputs = append(outputs,
		leakSource{name: "orders ddi run stdout", text: orders.stdout.String()},
		leakSource{name: "other ddi run stdout", text: other.stdout.String()})

	for _, src := range outputs {
		t.Run(src.name, func(t *testing.T) {
			for what, c := range canaries {
				if form, at := leaktest.Find(src.text, c); form != "" {
					t.Errorf("%s holds the %s (%s): %q, want no secret value", src.name, what, form, at)
				}
			}
		})
	}
}

// leakSource is text that must hold no secret.
type leakSource struct{ name, text string }

// startLoggedControlPlane starts a local control plane that logs to w at
// debug level.
func startLoggedControlPlane(t *testing.T, w io.Writer) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cp, err := controlplane.StartLocal(context.Background(), filepath.Join(t.TempDir(), "data"), "127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Stop() })
	return cp.URL
}

// function is a command run with `ddi run --log-level debug` in the
// background.
type function struct {
	addr, root     string
	stdout, stderr *leaktest.Buffer
	stopFile       string
	done           chan error
	stopped        bool
}

// startFunction runs a function named name with the extra ddi run flags
// and waits until its command has started; the command writes its
// sidecar's address for the test, then waits to be told to stop.
func startFunction(t *testing.T, cp, name string, flags ...string) *function {
	t.Helper()
	dir := t.TempDir()
	f := &function{
		root:     filepath.Join(dir, "bindings"),
		stdout:   &leaktest.Buffer{},
		stderr:   &leaktest.Buffer{},
		stopFile: filepath.Join(dir, "stop"),
		done:     make(chan error, 1),
	}
	addrFile := filepath.Join(dir, "addr")
	args := append([]string{"--control-plane", cp, "--log-level", "debug", "run", "--name", name, "--binding-root", f.root}, flags...)
	args = append(args, "--", "sh", "-c",
		`echo "$DDI_ADDR" > `+addrFile+`.tmp && mv `+addrFile+`.tmp `+addrFile+` && while [ ! -e `+f.stopFile+` ]; do sleep 0.05; done`)
	go func() { f.done <- Run(context.Background(), args, f.stdout, f.stderr) }()
	t.Cleanup(func() { f.stop(t) })
	for deadline := time.Now().Add(20 * time.Second); f.addr == ""; {
		if b, err := os.ReadFile(addrFile); err == nil {
			f.addr = strings.TrimSpace(string(b))
		} else if time.Now().After(deadline) {
			t.Fatalf("ddi run --name %s did not start its command within 20s; stderr:\n%s", name, f.stderr.String())
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	return f
}

// stop tells the command to exit (ddi run forwards signals, not the
// context) and waits for ddi run to return.
func (f *function) stop(t *testing.T) {
	t.Helper()
	if f.stopped {
		return
	}
	f.stopped = true
	if err := os.WriteFile(f.stopFile, nil, 0o600); err != nil {
		t.Error(err)
	}
	select {
	case err := <-f.done:
		if err != nil {
			t.Errorf("ddi run = %v, want exit status 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("ddi run did not return within 20s of its command's end")
	}
}

// httpDo sends a JSON body (if any) to url and returns the status and body.
func httpDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, string(b)
}

// waitFileContent waits up to 20s for path to hold want and returns what
// it last held.
func waitFileContent(t *testing.T, path, want string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if (err == nil && string(b) == want) || time.Now().After(deadline) {
			return string(b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
