package podauth

import (
	"encoding/base64"
	"testing"
	"time"
)

func jwt(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(claims)) + "." + enc([]byte("sig"))
}

// TestIsPodToken: only a token whose claims name the sidecar audience takes
// the pod path; everything else is a user's token, verified with the API
// server's own audience, so a pod's sidecar token can never be read as a
// user's.
func TestIsPodToken(t *testing.T) {
	for _, tt := range []struct {
		name  string
		token string
		want  bool
	}{
		{name: "sidecar token", token: jwt(`{"aud":["ddi"],"kubernetes.io":{"pod":{"uid":"u"}}}`), want: true},
		{name: "audience as a string", token: jwt(`{"aud":"ddi"}`), want: true},
		{name: "one of several audiences", token: jwt(`{"aud":["https://kubernetes.default.svc","ddi"]}`), want: true},
		{name: "API server audience", token: jwt(`{"aud":["https://kubernetes.default.svc"]}`), want: false},
		{name: "no audience", token: jwt(`{"sub":"alice"}`), want: false},
		{name: "opaque token", token: "abcdef0123456789", want: false},
		{name: "claims not base64", token: "a.!!!.c", want: false},
	} {
		if got := isPodToken(tt.token, "ddi"); got != tt.want {
			t.Errorf("%s: isPodToken = %t, want %t", tt.name, got, tt.want)
		}
	}
}

func TestJWTExpiry(t *testing.T) {
	if got := jwtExpiry(jwt(`{"exp":1800000000}`)); !got.Equal(time.Unix(1800000000, 0)) {
		t.Errorf("jwtExpiry = %v, want 1800000000", got)
	}
	for _, tok := range []string{jwt(`{"sub":"x"}`), "opaque", "a.b.c"} {
		if got := jwtExpiry(tok); !got.IsZero() {
			t.Errorf("jwtExpiry(%q) = %v, want zero", tok, got)
		}
	}
}
