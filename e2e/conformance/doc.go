// Package conformance checks Steward's status against the libraries other
// tools run, not against our reading of them: kstatus
// (sigs.k8s.io/cli-utils/pkg/kstatus, what Flux, kpt and `kubectl wait`
// style gates use) and gopher-lua (the Lua 5.1 VM Argo CD embeds), with the
// Argo CD health checks of config/argocd.
//
// The expected results are the status table in the README: every row names
// the object of the e2e suite that is in that state, its kstatus result and
// its Argo CD health. TestLiveObjectsFollowTheTable reads those objects as
// the API server returned them (written by the e2e suite, which sets
// STEWARD_LIVE_OBJECTS); the other tests need no cluster.
package conformance
