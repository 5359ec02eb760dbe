package ui

import (
	"sort"
	"testing"

	"github.com/kogge-fleet/kogge/kiosk/flow"
	"github.com/kogge-fleet/kogge/kiosk/i18n"
)

// flowKeys are the keys the flow engine puts in a View: its messages, the
// photo guidance and the counter items.
func flowKeys() []string {
	keys := append(flow.MessageKeys(), flow.GuidanceKeys()...)
	for _, c := range flow.CounterItems() {
		keys = append(keys, "counter."+c)
	}
	return keys
}

// TestCatalogueCoversFlow fails when the flow can show a message the
// catalogue lacks (in any language: the catalogue's own test makes every
// language match the reference).
func TestCatalogueCoversFlow(t *testing.T) {
	cat := i18n.Default()
	if err := cat.Check(flowKeys()...); err != nil {
		t.Error(err)
	}
}

// TestNoUnusedMessages fails when the catalogue holds a message neither
// the flow nor this UI shows, so translators never translate dead text.
func TestNoUnusedMessages(t *testing.T) {
	used := map[string]bool{}
	for _, k := range flowKeys() {
		used[k] = true
	}
	for k := range codeKeys(t) {
		used[k] = true
	}
	for _, p := range stepKeys {
		used[p+".title"], used[p+".instruction"] = true, true
	}
	// Keys the UI builds from the view's values.
	for _, d := range []string{"id-card", "passport", "temporary-id"} {
		used["document."+d] = true
	}
	for _, p := range []string{"camera", "fingerprint", "printer", "payment", "eid"} {
		used["admin.peripheral."+p] = true
	}
	for _, s := range []string{"ok", "degraded", "missing", "error"} {
		used["admin.state."+s] = true
	}
	var unused []string
	for _, k := range i18n.Default().Keys("de") {
		if !used[k] {
			unused = append(unused, k)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Errorf("catalogue messages nothing shows (remove them or use them): %q", unused)
	}
}
