package conformance

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// row is one row of the README's status table.
type row struct {
	kind, state, object, kstatus, argo string
}

// table reads the README's status table: the rows between the line
// `<!-- status-table -->` and the next blank line.
func table(t *testing.T) []row {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []row
	in := false
	scan := bufio.NewScanner(f)
	for scan.Scan() {
		line := strings.TrimSpace(scan.Text())
		switch {
		case line == "<!-- status-table -->":
			in = true
		case in && line == "" && len(rows) > 0:
			return rows
		case in && strings.HasPrefix(line, "|") && !strings.HasPrefix(line, "|---") && !strings.HasPrefix(line, "| kind"):
			cells := strings.Split(strings.Trim(line, "|"), "|")
			if len(cells) != 6 {
				t.Fatalf("README status table row has %d cells, want 6: %s", len(cells), line)
			}
			clean := func(i int) string { return strings.Trim(strings.TrimSpace(cells[i]), "`") }
			rows = append(rows, row{
				kind:    clean(0),
				state:   clean(1),
				object:  clean(2),
				kstatus: clean(4),
				argo:    strings.Fields(clean(5))[0],
			})
		}
	}
	if len(rows) == 0 {
		t.Fatal("no status table in README.md (marked <!-- status-table -->)")
	}
	return rows
}

// TestLiveObjectsFollowTheTable computes kstatus and the Argo CD health of
// each object the e2e suite left in every state, as the API server returned
// it, and compares with the README's table.
func TestLiveObjectsFollowTheTable(t *testing.T) {
	dir := os.Getenv("STEWARD_LIVE_OBJECTS")
	if dir == "" {
		t.Skip("STEWARD_LIVE_OBJECTS is set by the e2e suite (status::conformance_with_kstatus_and_gopher_lua)")
	}
	rows := table(t)
	for _, r := range rows {
		t.Run(r.kind+"/"+r.state, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, r.kind+"_"+r.object+".json"))
			if err != nil {
				t.Fatal(err)
			}
			// As client-go decodes it: integers stay int64.
			u := &unstructured.Unstructured{}
			if err := u.UnmarshalJSON(raw); err != nil {
				t.Fatal(err)
			}
			obj := u.Object
			res, err := status.Compute(u)
			if err != nil {
				t.Fatal(err)
			}
			if string(res.Status) != r.kstatus {
				t.Errorf("kstatus %s (%s), the table says %s", res.Status, res.Message, r.kstatus)
			}
			h, err := health(filepath.Join(argocdDir, "steward.dev", r.kind, "health.lua"), obj)
			if err != nil {
				t.Fatal(err)
			}
			if h.Status != r.argo {
				t.Errorf("Argo CD health %s (%s), the table says %s", h.Status, h.Message, r.argo)
			}
		})
	}
}

// TestLiveFluxHealthCheckOverAnExpiredException: a Flux Kustomization's
// health check waits until every object it applied is Current; one with an
// exception that has reached its end must pass, not fail.
func TestLiveFluxHealthCheckOverAnExpiredException(t *testing.T) {
	dir := os.Getenv("STEWARD_LIVE_OBJECTS")
	if dir == "" {
		t.Skip("STEWARD_LIVE_OBJECTS is set by the e2e suite")
	}
	for _, name := range []string{
		"ControlOwnership_healthy", "PolicyException_active", "PolicyException_pending",
		"PolicyException_expiring-soon", "PolicyException_expired",
	} {
		raw, err := os.ReadFile(filepath.Join(dir, name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			t.Fatal(err)
		}
		res, err := status.Compute(u)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != status.CurrentStatus {
			t.Errorf("%s is %s (%s): the health check would not pass", name, res.Status, res.Message)
		}
	}
}
