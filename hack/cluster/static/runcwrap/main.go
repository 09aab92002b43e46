// Command runcwrap stands in for runc in the local cluster's containerd.
//
// kubelet gives pod sandboxes an oom_score_adj of -998, and runc must lower
// the adjustment to apply it, which needs CAP_SYS_RESOURCE. Sandboxes such as
// ours lack that capability, so runc fails with "can't get final child's PID
// from pipe: EOF". On create and run, runcwrap rewrites a negative
// process.oomScoreAdj in the bundle's config.json to 0, then execs the real
// runc with the same arguments. Nothing else changes.
//
// The real runc is $DDI_RUNC, or /usr/sbin/runc, or runc on PATH.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

func main() {
	runc, err := realRunc()
	if err != nil {
		fmt.Fprintf(os.Stderr, "runcwrap: %v\n", err)
		os.Exit(127)
	}
	if bundle, ok := bundleOf(os.Args[1:]); ok {
		if err := clampOOMScoreAdj(filepath.Join(bundle, "config.json")); err != nil {
			fmt.Fprintf(os.Stderr, "runcwrap: %v\n", err)
			os.Exit(1)
		}
	}
	argv := append([]string{runc}, os.Args[1:]...)
	err = syscall.Exec(runc, argv, os.Environ())
	fmt.Fprintf(os.Stderr, "runcwrap: exec %s: %v\n", runc, err)
	os.Exit(127)
}

func realRunc() (string, error) {
	if p := os.Getenv("DDI_RUNC"); p != "" {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/runc"); err == nil {
		return "/usr/sbin/runc", nil
	}
	p, err := exec.LookPath("runc")
	if err != nil {
		return "", fmt.Errorf("find runc: %w", err)
	}
	return p, nil
}

// bundleOf returns the --bundle argument of a create or run command.
func bundleOf(args []string) (string, bool) {
	cmd := false
	bundle := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "create" || a == "run":
			cmd = true
		case a == "--bundle" || a == "-b":
			if i+1 < len(args) {
				bundle = args[i+1]
				i++
			}
		case len(a) > 9 && a[:9] == "--bundle=":
			bundle = a[9:]
		}
	}
	return bundle, cmd && bundle != ""
}

// clampOOMScoreAdj sets a negative process.oomScoreAdj in the OCI spec at path
// to 0, keeping every other field as it was.
func clampOOMScoreAdj(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read bundle spec: %w", err)
	}
	var spec map[string]json.RawMessage
	if err := json.Unmarshal(data, &spec); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	rawProc, ok := spec["process"]
	if !ok {
		return nil
	}
	var proc map[string]json.RawMessage
	if err := json.Unmarshal(rawProc, &proc); err != nil {
		return fmt.Errorf("decode process in %s: %w", path, err)
	}
	rawAdj, ok := proc["oomScoreAdj"]
	if !ok {
		return nil
	}
	var adj int
	if err := json.Unmarshal(rawAdj, &adj); err != nil || adj >= 0 {
		return nil
	}
	proc["oomScoreAdj"] = json.RawMessage("0")
	if spec["process"], err = json.Marshal(proc); err != nil {
		return fmt.Errorf("encode process: %w", err)
	}
	out, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("encode spec: %w", err)
	}
	if bytes.Equal(out, data) {
		return nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat bundle spec: %w", err)
	}
	tmp := path + ".runcwrap"
	if err := os.WriteFile(tmp, out, info.Mode().Perm()); err != nil {
		return fmt.Errorf("write bundle spec: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace bundle spec: %w", err)
	}
	return nil
}
