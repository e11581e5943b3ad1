package conformance

import (
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"
)

// healthTests is a health_test.yaml of Argo CD's resource_customizations.
type healthTests struct {
	Tests []struct {
		HealthStatus struct {
			Status  string `json:"status"`
			Message string `json:"message"`
		} `json:"healthStatus"`
		InputPath string `json:"inputPath"`
	} `json:"tests"`
}

// TestHealthChecksUnderGopherLua runs every fixture of every kind through
// its health.lua in gopher-lua, as Argo CD does.
func TestHealthChecksUnderGopherLua(t *testing.T) {
	kinds, err := filepath.Glob(filepath.Join(argocdDir, "steward.dev", "*"))
	if err != nil || len(kinds) != 2 {
		t.Fatalf("want the two kinds under %s, got %v (%v)", argocdDir, kinds, err)
	}
	for _, dir := range kinds {
		var tests healthTests
		readYAML(t, filepath.Join(dir, "health_test.yaml"), &tests)
		if len(tests.Tests) == 0 {
			t.Fatalf("%s: no tests", dir)
		}
		for _, tc := range tests.Tests {
			t.Run(filepath.Base(dir)+"/"+tc.InputPath, func(t *testing.T) {
				var obj map[string]any
				readYAML(t, filepath.Join(dir, tc.InputPath), &obj)
				got, err := health(filepath.Join(dir, "health.lua"), obj)
				if err != nil {
					t.Fatal(err)
				}
				if got.Status != tc.HealthStatus.Status || got.Message != tc.HealthStatus.Message {
					t.Errorf("got %q %q, want %q %q", got.Status, got.Message, tc.HealthStatus.Status, tc.HealthStatus.Message)
				}
			})
		}
	}
}

// TestArgoCMPatchCarriesTheScripts: the argocd-cm patch users apply holds
// exactly the health.lua files.
func TestArgoCMPatchCarriesTheScripts(t *testing.T) {
	var patch struct {
		Data map[string]string `json:"data"`
	}
	readYAML(t, filepath.Join(argocdDir, "argocd-cm-patch.yaml"), &patch)
	for _, kind := range []string{"ControlOwnership", "PolicyException"} {
		script, err := os.ReadFile(filepath.Join(argocdDir, "steward.dev", kind, "health.lua"))
		if err != nil {
			t.Fatal(err)
		}
		key := "resource.customizations.health.steward.dev_" + kind
		if patch.Data[key] != string(script) {
			t.Errorf("argocd-cm-patch.yaml %s differs from steward.dev/%s/health.lua", key, kind)
		}
	}
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
