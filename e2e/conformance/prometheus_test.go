package conformance

import (
	"path/filepath"
	"reflect"
	"testing"
)

// TestPrometheusRuleCarriesTheTestedRules: the PrometheusRule users apply
// holds exactly the groups `promtool test rules` checks in rules.yaml.
func TestPrometheusRuleCarriesTheTestedRules(t *testing.T) {
	dir := "../../config/prometheus"
	var plain struct {
		Groups []any `json:"groups"`
	}
	var cr struct {
		Kind string `json:"kind"`
		Spec struct {
			Groups []any `json:"groups"`
		} `json:"spec"`
	}
	readYAML(t, filepath.Join(dir, "rules.yaml"), &plain)
	readYAML(t, filepath.Join(dir, "prometheus_rule.yaml"), &cr)
	if cr.Kind != "PrometheusRule" || len(plain.Groups) == 0 {
		t.Fatalf("want a PrometheusRule and rule groups, got %q and %d groups", cr.Kind, len(plain.Groups))
	}
	if !reflect.DeepEqual(plain.Groups, cr.Spec.Groups) {
		t.Errorf("prometheus_rule.yaml spec.groups differs from rules.yaml groups")
	}
}
