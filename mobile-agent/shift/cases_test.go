package shift

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestCases(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now() // 07:30 local
	loc := f.opts.Location
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc)
	mk := func(officer string, at time.Time, kind string) Case {
		return Case{ID: uuid.New(), Officer: officer, Kind: kind, CreatedAt: at, Status: "received"}
	}
	reports := []Case{
		mk("W-0417", now.Add(-time.Hour), "roadwork.report"),
		mk("W-0417", midnight.Add(-time.Hour), "roadwork.report"), // yesterday 23:00
		mk("W-0500", now.Add(-time.Minute), "roadwork.report"),    // another officer
	}
	notices := []Case{
		mk("W-0417", now.Add(-30*time.Minute), "enforcement.notice"),
		mk("W-0417", midnight.Add(-3*time.Hour), "enforcement.notice"), // yesterday 21:00
	}
	var lang string
	f.opts.Sources = []CaseSource{
		SourceFunc(func(_ context.Context, q Query) ([]Case, error) { lang = q.Lang; return reports, nil }),
		SourceFunc(func(context.Context, Query) ([]Case, error) { return notices, nil }),
	}
	m := f.manager(t)
	ctx := t.Context()
	if _, err := m.Cases(ctx, "de"); !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("cases without login: %v", err)
	}
	if _, err := m.Login(ctx, "W-0417", "482913"); err != nil {
		t.Fatal(err)
	}
	got, err := m.Cases(ctx, "en")
	if err != nil {
		t.Fatal(err)
	}
	if lang != "en" {
		t.Fatalf("source asked in %q", lang)
	}
	want := []uuid.UUID{notices[0].ID, reports[0].ID}
	if len(got) != len(want) {
		t.Fatalf("got %d cases, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].ID != want[i] {
			t.Fatalf("case %d is %v, want %v (newest first, today's, own)", i, got[i].ID, want[i])
		}
	}

	// A night shift that started yesterday 22:00 reaches back to its start.
	f.clock.Add(-(now.Sub(midnight) + 2*time.Hour))
	if _, err := m.StartShift(ctx); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(now.Sub(midnight) + 2*time.Hour)
	got, err = m.Cases(ctx, "de")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2].ID != reports[1].ID {
		t.Fatalf("night shift: got %+v, want the 23:00 report too but not the 21:00 notice", got)
	}
}

func TestCollectKeepsWhatWorks(t *testing.T) {
	good := Case{ID: uuid.New(), Officer: "a", CreatedAt: time.Unix(100, 0)}
	got, err := Collect(t.Context(), Query{Officer: "a"},
		SourceFunc(func(context.Context, Query) ([]Case, error) { return nil, errors.New("notices unreadable") }),
		SourceFunc(func(context.Context, Query) ([]Case, error) { return []Case{good}, nil }))
	if err == nil || len(got) != 1 || got[0].ID != good.ID {
		t.Fatalf("got %v, %v; want the good source's case and an error", got, err)
	}
}

func TestQueryMatch(t *testing.T) {
	from, to := time.Unix(100, 0), time.Unix(200, 0)
	q := Query{Officer: "a", From: from, To: to}
	for _, c := range []struct {
		officer string
		at      time.Time
		want    bool
	}{
		{"a", from, true}, {"a", to, false}, {"a", time.Unix(99, 0), false}, {"b", time.Unix(150, 0), false},
	} {
		if got := q.Match(c.officer, c.at); got != c.want {
			t.Errorf("Match(%s, %v) = %v", c.officer, c.at.Unix(), got)
		}
	}
	if !(Query{}).Match("x", time.Unix(5, 0)) {
		t.Error("empty query does not match everything")
	}
}
