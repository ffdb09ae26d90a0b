// Command modproxy writes the repository's four modules, at one version,
// as a file-system Go module proxy, so that CI can check what a user's
//
//	go install github.com/runnel-go/runnel/cmd/runnel@latest
//
// does once the modules are tagged: the requirements of the nested modules
// on each other, which name a placeholder version here, name the release.
//
//	go run ./.ci/modproxy REPO PROXYDIR VERSION
package main

import (
	"archive/zip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// modules are the repository's modules, by path, with their directories.
var modules = []struct{ path, dir string }{
	{"github.com/runnel-go/runnel", ""},
	{"github.com/runnel-go/runnel/server", "server"},
	{"github.com/runnel-go/runnel/cmd/runnel", "cmd/runnel"},
	{"github.com/runnel-go/runnel/runnelaws", "runnelaws"},
}

// placeholder is the version the nested modules require each other at
// between releases; go.work replaces it with the directories.
const placeholder = "v0.0.0-00010101000000-000000000000"

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: modproxy REPO PROXYDIR VERSION")
		os.Exit(2)
	}
	if err := write(os.Args[1], os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, "modproxy:", err)
		os.Exit(1)
	}
}

func write(repo, proxy, version string) error {
	out, err := exec.Command("git", "-C", repo, "ls-files").Output()
	if err != nil {
		return fmt.Errorf("listing the repository's files: %w", err)
	}
	files := strings.Fields(string(out))
	for _, m := range modules {
		gomod, err := os.ReadFile(filepath.Join(repo, m.dir, "go.mod"))
		if err != nil {
			return err
		}
		mod := []byte(strings.ReplaceAll(string(gomod), placeholder, version))
		dir := filepath.Join(proxy, m.path, "@v")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		info := fmt.Sprintf(`{"Version":%q,"Time":"2026-01-01T00:00:00Z"}`, version)
		for name, body := range map[string][]byte{"list": []byte(version + "\n"), version + ".info": []byte(info), version + ".mod": mod} {
			if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
				return err
			}
		}
		if err := writeZip(filepath.Join(dir, version+".zip"), repo, m.path+"@"+version, m.dir, files, mod); err != nil {
			return err
		}
	}
	return nil
}

// writeZip writes the module zip of the module in dir: its tracked files,
// without those of the modules nested in it, and go.mod as mod.
func writeZip(name, repo, prefix, dir string, files []string, mod []byte) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	z := zip.NewWriter(f)
	for _, file := range files {
		rel, ok := strings.CutPrefix(file, dir+"/")
		if dir == "" {
			rel, ok = file, true
		}
		if !ok || nestedElsewhere(dir, file) {
			continue
		}
		body := mod
		if rel != "go.mod" {
			if body, err = os.ReadFile(filepath.Join(repo, file)); err != nil {
				return err
			}
		}
		w, err := z.Create(prefix + "/" + rel)
		if err != nil {
			return err
		}
		if _, err := w.Write(body); err != nil {
			return err
		}
	}
	if err := z.Close(); err != nil {
		return err
	}
	return f.Close()
}

// nestedElsewhere reports whether file belongs to a module nested in the
// module of dir.
func nestedElsewhere(dir, file string) bool {
	for _, m := range modules {
		if m.dir != dir && m.dir != "" && strings.HasPrefix(m.dir+"/", dir) && strings.HasPrefix(file, m.dir+"/") {
			return true
		}
	}
	return false
}
