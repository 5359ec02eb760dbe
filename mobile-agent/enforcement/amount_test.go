package enforcement

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestAssess(t *testing.T) {
	c := embedded(t)
	at := time.Date(2025, 1, 6, 8, 15, 0, 0, berlin(t))
	get := func(tbnrs ...string) []Entry {
		var es []Entry
		for _, n := range tbnrs {
			e, err := c.Lookup(n, at)
			if err != nil {
				t.Fatal(err)
			}
			es = append(es, e)
		}
		return es
	}
	tests := []struct {
		name     string
		offences []string
		cents    int64
		sanction Sanction
		lead     string
	}{
		{"one warning", []string{"141312"}, 2500, Warning, "141312"},
		{"the highest warning applies", []string{"112262", "141312", "113100"}, 2500, Warning, "141312"},
		{"order does not matter", []string{"141312", "112262"}, 2500, Warning, "141312"},
		{"55 EUR is still a warning", []string{"112454", "141312"}, 5500, Warning, "112454"},
		{"equal amounts: the first leads", []string{"112454", "112474"}, 5500, Warning, "112454"},
		{"one fine", []string{"112655"}, 7000, Fine, "112655"},
		{"a fine offence makes it a fine", []string{"141312", "112666"}, 8500, Fine, "112666"},
		{"not added up", []string{"112454", "141402"}, 5500, Warning, "112454"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Assess(get(tt.offences...))
			if err != nil {
				t.Fatal(err)
			}
			if a.AmountCents != tt.cents || a.Sanction != tt.sanction || a.Lead.TBNR != tt.lead || len(a.Entries) != len(tt.offences) {
				t.Fatalf("got %d %v lead %s", a.AmountCents, a.Sanction, a.Lead.TBNR)
			}
		})
	}
	if _, err := Assess(nil); !errors.Is(err, ErrNoOffence) {
		t.Fatalf("no offences: %v", err)
	}
	if _, err := Assess(get("141312", "141312")); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("same offence twice: %v", err)
	}
	// Entries made by hand still follow the warning rule.
	if _, err := Assess([]Entry{{TBNR: "100000", AmountCents: 2750, Sanction: Warning}}); err == nil || !strings.Contains(err.Error(), "steps of 5") {
		t.Fatalf("27,50 EUR warning: %v", err)
	}
	if a, err := Assess([]Entry{{TBNR: "100000", AmountCents: 6000, Sanction: Warning}}); err != nil || a.Sanction != Fine {
		t.Fatalf("60 EUR: %v %v", a.Sanction, err)
	}
}

func TestWarningAmounts(t *testing.T) {
	var lawful []int64
	for c := int64(0); c <= 10000; c++ {
		if IsWarningAmount(c) {
			lawful = append(lawful, c)
		}
	}
	if len(lawful) != 11 || lawful[0] != 500 || lawful[10] != 5500 {
		t.Fatalf("warning amounts %v; want 5, 10, …, 55 EUR", lawful)
	}
	for i := 1; i < len(lawful); i++ {
		if lawful[i]-lawful[i-1] != 500 {
			t.Fatalf("step %d", lawful[i]-lawful[i-1])
		}
	}
}

func TestFormatEuro(t *testing.T) {
	for cents, want := range map[int64]string{
		2500: "25,00 €", 5: "0,05 €", 123456: "1.234,56 €", 100000000: "1.000.000,00 €", -2500: "-25,00 €", 0: "0,00 €",
	} {
		if got := FormatEuro(cents); got != want {
			t.Errorf("FormatEuro(%d) = %q, want %q", cents, got, want)
		}
	}
}
