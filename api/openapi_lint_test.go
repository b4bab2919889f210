package api_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// lintDir holds the OpenAPI linter the tests run, Redocly CLI, pinned by its
// package-lock.json and installed there by make test (npm ci): a tool of the
// tests, not of the build.
const lintDir = "testdata/openapi-lint"

// TestOpenAPILint runs Redocly CLI's linter on openapi.json with its
// recommended rules, every warning an error (redocly.yaml); the few
// problems it is told to ignore are listed with why in
// .redocly.lint-ignore.yaml. Outside CI a machine without the linter
// (or Node.js) skips the test; in CI (CI=true) it fails.
func TestOpenAPILint(t *testing.T) {
	redocly := filepath.Join(lintDir, "node_modules", ".bin", "redocly")
	_, errLinter := os.Stat(redocly)
	_, errNode := exec.LookPath("node")
	if errLinter != nil || errNode != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Redocly CLI (%v) or Node.js (%v) missing: .ci/run installs Node.js (Debian's npm) and make test the linter (npm ci in api/%s)", errLinter, errNode, lintDir)
		}
		t.Skipf("Redocly CLI or Node.js missing: run make test, or npm ci in api/%s", lintDir)
	}
	cmd := exec.CommandContext(t.Context(), redocly, "lint", "--config", filepath.Join(lintDir, "redocly.yaml"), "--format", "codeframe", "openapi.json")
	// Neither usage data nor a look for updates leaves the machine.
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true", "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redocly lint openapi.json: %v\n%s", err, out)
	}
}
