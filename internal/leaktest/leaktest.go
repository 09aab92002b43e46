// Package leaktest helps tests prove that secret values appear nowhere
// they must not: unique canary values, a search for them in the encodings
// a leak takes (clear, base64, hex, printed bytes), a log buffer safe for
// concurrent writers, and the text of a directory tree. It is imported by
// tests only, and must not be by the product.
package leaktest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Canary returns a unique secret value that appears nowhere by chance.
func Canary() string { return "cnry" + strings.ToLower(rand.Text()) }

// Find reports how text holds c: in clear, base64 encoded as a []byte
// field (a Secret's data) would be, in hex or printed as bytes, with the
// text around it; "" when it does not.
func Find(text, c string) (form, at string) {
	for _, f := range []struct{ name, value string }{
		{name: "in clear", value: c},
		{name: "base64", value: base64.StdEncoding.EncodeToString([]byte(c))},
		{name: "base64 unpadded", value: base64.RawStdEncoding.EncodeToString([]byte(c))},
		{name: "base64url", value: base64.RawURLEncoding.EncodeToString([]byte(c))},
		{name: "hex", value: hex.EncodeToString([]byte(c))},
		{name: "as bytes", value: strings.Trim(fmt.Sprint([]byte(c)), "[]")},
	} {
		if i := strings.Index(text, f.value); i >= 0 {
			return f.name, text[max(0, i-120):min(len(text), i+len(f.value)+60)]
		}
	}
	return "", ""
}

// Buffer is a bytes.Buffer that loggers on several goroutines may write
// while the test reads it.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TreeText is every file name and content under root, as one text.
func TreeText(t testing.TB, root string) string {
	t.Helper()
	var sb strings.Builder
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		sb.WriteString(path + "\n")
		if d.Type().IsRegular() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sb.Write(b)
			sb.WriteString("\n")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", root, err)
	}
	return sb.String()
}
