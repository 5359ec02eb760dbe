package mobileagent_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	mobileagent "github.com/kogge-fleet/kogge/mobile-agent"
	"github.com/kogge-fleet/kogge/protocol"
)

func TestSplitLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{in: "", want: nil},
		{in: "   # only a comment", want: nil},
		{in: "login 4711 1234", want: []string{"login", "4711", "1234"}},
		{in: "  notice   plate\tD  HB-AB 123  ", want: []string{"notice", "plate", "D", "HB-AB", "123"}},
		{in: `notice address "Am Markt" 21`, want: []string{"notice", "address", "Am Markt", "21"}},
		{in: `echo "say \"hi\" \\ there"`, want: []string{"echo", `say "hi" \ there`}},
		{in: `echo 'a "b" \c'`, want: []string{"echo", `a "b" \c`}},
		{in: `echo ab"c d"e`, want: []string{"echo", "abc de"}},
		{in: `echo "" x`, want: []string{"echo", "", "x"}},
		{in: "report note Loch # im Asphalt", want: []string{"report", "note", "Loch"}},
		{in: "echo a#b", want: []string{"echo", "a#b"}},
		{in: `echo "open`, err: true},
		{in: `echo 'open`, err: true},
		{in: `echo "bad \n escape"`, err: true},
		{in: "echo \xff", err: true},
	} {
		got, err := mobileagent.SplitLine(tc.in)
		if tc.err {
			if !errors.Is(err, mobileagent.ErrSyntax) {
				t.Errorf("%q: %v, %v; want a syntax error", tc.in, got, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func FuzzSplitLine(f *testing.F) {
	for _, s := range []string{"login 4711 1234", `notice address "Am Markt" 21`, `echo 'x' "y\"z" # c`, `"`, "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		words, err := mobileagent.SplitLine(line)
		if err != nil {
			if !errors.Is(err, mobileagent.ErrSyntax) {
				t.Fatalf("%q: error %v is not a syntax error", line, err)
			}
			return
		}
		// Words without quotes, spaces and comment marks split the same
		// way again once joined.
		plain := true
		for _, w := range words {
			if w == "" || strings.ContainsAny(w, " \t\r\n\"'#") {
				plain = false
			}
		}
		if plain {
			again, err := mobileagent.SplitLine(strings.Join(words, " "))
			if err != nil || !slices.Equal(again, words) {
				t.Fatalf("%q → %q → %q, %v", line, words, again, err)
			}
		}
	})
}

func TestParseScriptTime(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Berlin")
	must(t, err)
	now := time.Date(2026, 3, 2, 10, 30, 0, 0, loc)
	for in, want := range map[string]time.Time{
		"now":                  now,
		"-65m":                 now.Add(-65 * time.Minute),
		"09:15":                time.Date(2026, 3, 2, 9, 15, 0, 0, loc),
		"09:15:30":             time.Date(2026, 3, 2, 9, 15, 30, 0, loc),
		"2026-03-02T08:00:00Z": time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC),
	} {
		got, err := mobileagent.ParseScriptTime(in, now, loc)
		if err != nil || !got.Equal(want) {
			t.Errorf("%s: %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "yesterday", "-x", "25:00", "--5m"} {
		if _, err := mobileagent.ParseScriptTime(bad, now, loc); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// A script drives a whole shift offline: a notice, a void, a report;
// then the statuses come back and the waits see them.
func TestShellScript(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	dir := t.TempDir()
	photoFile := dir + "/photo.jpg"
	must(t, os.WriteFile(photoFile, cameraJPEG(t, 400, 300), 0o600))
	var out bytes.Buffer
	sh := mobileagent.NewShell(f.app, &out, mobileagent.ShellOptions{Lang: "en", Poll: 10 * time.Millisecond})
	ctx := context.Background()
	script := `# a warden's morning
fail notice new
fail login 4711 0000
login 4711 1234
shift start
notice new
notice plate D hb-ab 123
notice vehicle VW grey
notice gnss
notice address "Am Markt" 21
notice offence search gehweg parkten
notice offence add 112454
notice valve VL05 hr11
notice photo ` + photoFile + `
notice remark "Fahrer nicht angetroffen"
notice show
notice check
notice issue
wait notice $notice saved 5s
notice new
notice plate D HB-XY 9
notice vehicle Opel
notice address Domshof
notice offence add 141314
notice check
fail notice issue
notice discard
notice void $notice "Parkschein nachgereicht"
report new pothole high
report gnss
report note "Schlagloch, 40 cm"
report photo ` + photoFile + `
report check
report submit
cases
status
`
	if err := sh.Run(ctx, strings.NewReader(script)); err != nil {
		t.Fatalf("%v\noutput:\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{
		"failed as expected: notice new:", "logged in: 4711 Erika Muster", "plate: HB-AB 123 (D)", "vehicle: VW grau",
		"112454", "notice " + sh.LastNotice() + " saved", "notice " + sh.LastNotice() + " printed",
		"observe 1h longer", "notice " + sh.LastNotice() + " voided", "photo 400×300 added",
		"report " + sh.LastReport().String() + " saved: Pothole", "[Voided · Saved, waiting for network]",
		"gnss: ok", "printer: ok", "sync: offline, 3 records not yet at the server",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if len(f.printer.Jobs()) != 1 {
		t.Errorf("%d print jobs, want 1", len(f.printer.Jobs()))
	}

	// The offices answer; the script waits for it.
	e, _ := f.app.NoticeEntry(sh.LastNotice())
	f.link.Heal()
	f.send(&protocol.RecordStatus{Items: []protocol.StatusItem{
		{Record: e.ID, State: protocol.Accepted, Reference: "OWI-7", At: protocol.At(time.Now())},
		{Record: sh.LastReport(), State: protocol.Closed, Reference: "311-9", Note: "erledigt", At: protocol.At(time.Now())},
	}})
	out.Reset()
	wait := "wait notice $notice delivered 10s\nwait report $report solved 10s\ncases\n"
	if err := sh.Run(ctx, strings.NewReader(wait)); err != nil {
		t.Fatalf("%v\noutput:\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "ref OWI-7") || !strings.Contains(out.String(), "[Solved]  ref 311-9") {
		t.Errorf("cases after the answers:\n%s", out.String())
	}

	// Errors name the line and the command.
	err := sh.Run(ctx, strings.NewReader("echo ok\nnotice frobnicate\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("unknown command: %v", err)
	}
	if err := sh.Exec(ctx, "wait notice HB42-0000009-9 accepted 50ms"); err == nil || !strings.Contains(err.Error(), "not on the list") {
		t.Errorf("wait for an unknown notice: %v", err)
	}
	if err := sh.Exec(ctx, "notice plate D"); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("too few arguments: %v", err)
	}
	out.Reset()
	must(t, sh.Exec(ctx, "help"))
	if !strings.Contains(out.String(), "notice offence add") || !strings.Contains(out.String(), "wait report") {
		t.Errorf("help:\n%s", out.String())
	}
}
