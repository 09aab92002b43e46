package protocol_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"ddi.dev/ddi/internal/httpapi"
	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
)

// The wire types as their real decoders read them: stream messages with a
// json.Decoder over the response body, one after another (as
// internal/client's Stream.Recv does for the sidecar), hellos and acks
// with httpapi.DecodeJSON (as the control plane does). What decodes
// encodes back to the same value, and a snapshot's hash depends on its
// content only.

// messageSeeds are stream lines in the shapes of docs/protocol.md.
var messageSeeds = []string{
	`{"type":"snapshot","stream":"ZJPTIOJ3ZU5OQSJSSST5CD3XET","version":42,"hash":"87d514ebe1cac3ebaa6600e6047c1834","consumer":{"namespace":"default","name":"frontend"},"bindings":[{"name":"greeter","provider":"greeter-v2","namespace":"default","type":"http","version":"2.1.0","endpoints":[{"url":"http://10.0.3.7:8080","ready":true}],"config":{"greeting":"hello"},"selector":"http@^2","revision":42}],"unresolved":[{"name":"db","selector":"postgresql@>=15,tier=gold","reason":"no provider of type postgresql"}]}`,
	`{"type":"unchanged","version":41,"hash":"9d3c6c5e0a1b4f7a8e2d1c0b9a8f7e6d"}`,
	`{"type":"heartbeat"}`,
	`{"type":"error","error":"dependency \"x\" must be ALIAS=SELECTOR"}` + "\n" + `{"type":"heartbeat"}`,
	`{"type":"snapshot","version":1,"bindings":[{"name":"db","provider":"pg","namespace":"team","type":"postgresql","endpoints":null,"secret":{"password":"s3cr3t"},"selector":"postgresql@^15","revision":1},{"name":"db","provider":"pg2","namespace":"team","type":"postgresql","endpoints":[],"selector":"postgresql@^15","revision":2}]}`,
	`{"type":"snapshot","version":-1,"bindings":[{"name":"","endpoints":[{"url":"\u0000","ready":false}]}],"unresolved":[{}]}`,
	`{"type":"future","extra":{"a":[1,2,3]}}`,
	`{"type":"snapshot","consumer":null,"bindings":null}`,
	"\xff\xfe", `[]`, `{"version":1e3}`, `{"version":9223372036854775808}`,
}

func FuzzMessage(f *testing.F) {
	for _, s := range messageSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dec := json.NewDecoder(bytes.NewReader(data))
		for range 64 {
			var m protocol.Message
			if err := dec.Decode(&m); err != nil {
				return // the stream ends on the first undecodable line
			}
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatalf("Marshal of a decoded message: %v", err)
			}
			var again protocol.Message
			if err := json.Unmarshal(b, &again); err != nil {
				t.Fatalf("Unmarshal(Marshal(m)) of %s: %v", b, err)
			}
			if diff := cmp.Diff(m, again, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("message JSON round trip (-first +second):\n%s", diff)
			}
			h := protocol.Hash(m.Bindings, m.Unresolved)
			if len(h) != 32 || h != protocol.Hash(again.Bindings, again.Unresolved) {
				t.Fatalf("Hash = %q, and %q after a round trip: want the same 32 hex digits", h, protocol.Hash(again.Bindings, again.Unresolved))
			}
			// Revisions do not count.
			moved := slices.Clone(m.Bindings)
			for i := range moved {
				moved[i].Revision = moved[i].Revision*3 + 1
			}
			if protocol.Hash(moved, m.Unresolved) != h {
				t.Fatalf("Hash changed with the binding revisions alone")
			}
			// Content does.
			if len(m.Bindings) > 0 {
				changed := slices.Clone(m.Bindings)
				changed[0].Provider += "x"
				if protocol.Hash(changed, m.Unresolved) == h {
					t.Fatalf("Hash did not change with a binding's provider")
				}
			}
		}
	})
}

// decode runs the control plane's decoder on body.
func decode(body []byte, v any) *httpapi.Problem {
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	return httpapi.DecodeJSON(httptest.NewRecorder(), req, v)
}

func FuzzHelloAndAck(f *testing.F) {
	for _, s := range []string{
		`{"sidecarID":"frontend-7f9c2d","consumer":{"namespace":"default","name":"frontend","serviceAccount":"","labels":{}},"dependencies":["greeter=http@^1","db=postgresql@>=15,tier=gold"],"resumeVersion":41,"resumeHash":"9d3c6c5e0a1b4f7a8e2d1c0b9a8f7e6d"}`,
		`{"sidecarID":"frontend-7f9c2d","stream":"ZJPTIOJ3ZU5OQSJSSST5CD3XET","version":42,"hash":"87d514ebe1cac3ebaa6600e6047c1834"}`,
		`{"sidecarID":"frontend-7f9c2d","stream":"ZJPTIOJ3ZU5OQSJSSST5CD3XET","version":42,"hash":"87d514ebe1cac3ebaa6600e6047c1834","error":"write binding db: disk full"}`,
		`{"sidecarID":"a","consumer":{"name":"fn"},"deps":[]}`, `{"sidecarID":"a"} {}`, `{"version":"1"}`, ``, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var hello protocol.Hello
		checkDecode(t, data, &hello, func() any { return new(protocol.Hello) })
		var ack protocol.Ack
		checkDecode(t, data, &ack, func() any { return new(protocol.Ack) })
	})
}

// checkDecode decodes data into v as the control plane does. A refusal is
// a 400 or 413 problem with a detail; what is accepted encodes back to
// a body that decodes to the same value.
func checkDecode(t *testing.T, data []byte, v any, fresh func() any) {
	t.Helper()
	if p := decode(data, v); p != nil {
		if (p.Status != http.StatusBadRequest && p.Status != http.StatusRequestEntityTooLarge) || p.Detail == "" {
			t.Fatalf("DecodeJSON(%T) refused %q with %+v, want a 400 or 413 problem with a detail", v, data, p)
		}
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("Marshal of a decoded %T: %v", v, err)
	}
	again := fresh()
	if p := decode(b, again); p != nil {
		t.Fatalf("DecodeJSON refused %s, the encoding of an accepted %T: %v", b, v, p)
	}
	if diff := cmp.Diff(v, again, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("%T JSON round trip (-first +second):\n%s", v, diff)
	}
}

func FuzzRedact(f *testing.F) {
	f.Add([]byte(`{"namespace":"default","name":"db","type":"postgresql","secret":{"username":"app","password":"hunter2"},"secretRef":{"name":"db","keys":["password"]}}`))
	f.Add([]byte(`{"name":"g","type":"http","secret":{}}`))
	f.Add([]byte(`{"name":"g","type":"http","secret":{"":"","\u2028":"x"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var p registry.Provider
		if err := json.Unmarshal(data, &p); err != nil {
			return
		}
		v := protocol.Redact(p)
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("Marshal(Redact(p)): %v", err)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(b, &fields); err != nil {
			t.Fatal(err)
		}
		if _, ok := fields["secret"]; ok {
			t.Fatalf("Redact(p) encodes secret values: %s", b)
		}
		var keys []string
		for k := range p.Secret {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, v.SecretKeys) {
			t.Fatalf("Redact(p).SecretKeys = %q, want the sorted keys %q", v.SecretKeys, keys)
		}
	})
}
