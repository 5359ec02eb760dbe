package mobileagent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/mobile-agent/enforcement"
	"github.com/kogge-fleet/kogge/mobile-agent/roadwork"
)

// MaxScriptLine bounds one line of a script.
const MaxScriptLine = 64 << 10

// ErrSyntax means a script line cannot be read (an open quote, a bad
// escape, not UTF-8).
var ErrSyntax = errors.New("script syntax")

// SplitLine splits a script line into words: words are separated by
// spaces and tabs; "double quotes" keep spaces and take the escapes \"
// and \\; 'single quotes' keep everything as it is; a # at the start of a
// word begins a comment that runs to the end of the line.
func SplitLine(line string) ([]string, error) {
	if len(line) > MaxScriptLine {
		return nil, fmt.Errorf("%w: a line of %d bytes, at most %d", ErrSyntax, len(line), MaxScriptLine)
	}
	if !utf8.ValidString(line) {
		return nil, fmt.Errorf("%w: not UTF-8 text", ErrSyntax)
	}
	var (
		words []string
		cur   strings.Builder
		in    bool // inside a word
	)
	flush := func() {
		if in {
			words = append(words, cur.String())
			cur.Reset()
			in = false
		}
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			flush()
		case c == '#' && !in:
			return words, nil
		case c == '"':
			in = true
			j := i + 1
			for ; j < len(line) && line[j] != '"'; j++ {
				if line[j] == '\\' {
					if j+1 >= len(line) || (line[j+1] != '"' && line[j+1] != '\\') {
						return nil, fmt.Errorf("%w: only \\\" and \\\\ may be escaped in double quotes (column %d)", ErrSyntax, j+1)
					}
					j++
				}
				cur.WriteByte(line[j])
			}
			if j >= len(line) {
				return nil, fmt.Errorf("%w: a double quote at column %d is not closed", ErrSyntax, i+1)
			}
			i = j
		case c == '\'':
			in = true
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("%w: a single quote at column %d is not closed", ErrSyntax, i+1)
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
		default:
			in = true
			cur.WriteByte(c)
		}
	}
	flush()
	return words, nil
}

// ShellOptions tune a Shell.
type ShellOptions struct {
	// Lang is the language of statuses and case titles: "de" or "en"
	// (default "en").
	Lang string
	// ReadFile reads the photo files the script names (os.ReadFile).
	ReadFile func(name string) ([]byte, error)
	// Poll is how often wait checks its condition (100 ms).
	Poll time.Duration
	// Wait is the default timeout of wait (60 s); MaxWait the longest one
	// a script may ask for (1 h).
	Wait, MaxWait time.Duration
}

// Shell runs the handheld's actions from a line-oriented script, for the
// headless CLI (kogge-mobile --script), the fleet simulator and tests.
// Each line is one command; see docs/mobile.md for the language. It is
// not safe for concurrent use.
type Shell struct {
	app  *App
	out  io.Writer
	opts ShellOptions
	cmds []command
	// The last notice number and report id, for $notice and $report.
	notice string
	report uuid.UUID
}

// NewShell returns a shell that drives app and writes what happens to out.
func NewShell(app *App, out io.Writer, opts ShellOptions) *Shell {
	if opts.Lang != "de" {
		opts.Lang = "en"
	}
	if opts.ReadFile == nil {
		opts.ReadFile = os.ReadFile
	}
	if opts.Poll <= 0 {
		opts.Poll = 100 * time.Millisecond
	}
	if opts.Wait <= 0 {
		opts.Wait = time.Minute
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = time.Hour
	}
	return &Shell{app: app, out: out, opts: opts, cmds: shellCommands()}
}

// LastNotice is the number of the notice the script issued last.
func (s *Shell) LastNotice() string { return s.notice }

// LastReport is the record id of the report the script filed last.
func (s *Shell) LastReport() uuid.UUID { return s.report }

// Run executes the script line by line and stops at the first command
// that fails, with an error naming the line.
func (s *Shell) Run(ctx context.Context, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxScriptLine+2)
	for n := 1; sc.Scan(); n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.Exec(ctx, sc.Text()); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read script: %w", err)
	}
	return nil
}

// Exec executes one line. Empty lines and comments do nothing.
func (s *Shell) Exec(ctx context.Context, line string) error {
	words, err := SplitLine(line)
	if err != nil || len(words) == 0 {
		return err
	}
	for i, w := range words {
		switch w {
		case "$notice":
			if s.notice == "" {
				return errors.New("$notice: no notice was issued yet")
			}
			words[i] = s.notice
		case "$report":
			if s.report == uuid.Nil {
				return errors.New("$report: no report was filed yet")
			}
			words[i] = s.report.String()
		}
	}
	if words[0] == "fail" {
		if len(words) == 1 {
			return errors.New("fail: name the command that must fail")
		}
		err := s.run(ctx, words[1:])
		if err == nil {
			return fmt.Errorf("%s: succeeded, but it should have failed", strings.Join(words[1:], " "))
		}
		s.say("failed as expected: %v", err)
		return nil
	}
	return s.run(ctx, words)
}

// run runs a command; its error names the command.
func (s *Shell) run(ctx context.Context, words []string) error {
	if err := s.exec(ctx, words); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(words[:min(2, len(words))], " "), err)
	}
	return nil
}

func (s *Shell) say(format string, args ...any) { fmt.Fprintf(s.out, format+"\n", args...) }

// command is one command of the language.
type command struct {
	name  string // the words that select it, e.g. "notice plate"
	usage string // its arguments
	help  string
	min   int // least arguments after the name
	max   int // most; -1: any
	run   func(s *Shell, ctx context.Context, args []string) error
}

// exec finds the command with the longest matching name and runs it.
func (s *Shell) exec(ctx context.Context, words []string) error {
	var best *command
	bestLen := 0
	for i := range s.cmds {
		c := &s.cmds[i]
		name := strings.Fields(c.name)
		if len(name) > len(words) || len(name) <= bestLen {
			continue
		}
		if slices.Equal(name, words[:len(name)]) {
			best, bestLen = c, len(name)
		}
	}
	if best == nil {
		return fmt.Errorf("unknown command %q; try help", strings.Join(words[:min(2, len(words))], " "))
	}
	args := words[bestLen:]
	if len(args) < best.min || (best.max >= 0 && len(args) > best.max) {
		return fmt.Errorf("usage: %s %s", best.name, best.usage)
	}
	return best.run(s, ctx, args)
}

// shellCommands is the script language (docs/mobile.md lists it with
// examples).
func shellCommands() []command {
	return []command{
		{name: "help", help: "list the commands", max: 0, run: (*Shell).help},
		{name: "echo", usage: "TEXT…", help: "print the text", max: -1, run: func(s *Shell, _ context.Context, a []string) error {
			s.say("%s", strings.Join(a, " "))
			return nil
		}},
		{name: "login", usage: "OFFICER PIN", help: "log in with the officer number and PIN", min: 2, max: 2, run: (*Shell).login},
		{name: "logout", help: "log out (the shift stays open)", max: 0, run: func(s *Shell, _ context.Context, _ []string) error {
			s.app.Logout()
			s.say("logged out")
			return nil
		}},
		{name: "shift start", help: "start a shift", max: 0, run: (*Shell).shiftStart},
		{name: "shift end", help: "end the shift and log out", max: 0, run: (*Shell).shiftEnd},
		{name: "status", help: "show the officer, the shift, the peripherals and the sync", max: 0, run: (*Shell).status},
		{name: "cases", help: "list today's own cases with their statuses", max: 0, run: (*Shell).cases},
		{name: "addresses", help: "list the recent addresses", max: 0, run: (*Shell).addresses},

		{name: "notice new", help: "start a notice; the observation starts now", max: 0, run: func(s *Shell, _ context.Context, _ []string) error {
			if err := s.app.NewNotice(); err != nil {
				return err
			}
			s.say("new notice, observation from %s", s.app.Now().In(s.app.Location()).Format("15:04:05"))
			return nil
		}},
		{name: "notice plate", usage: "NATIONALITY PLATE…", help: "set the plate, e.g. notice plate D HB-AB 123", min: 2, max: -1, run: (*Shell).noticePlate},
		{name: "notice vehicle", usage: "MAKE [COLOUR]", help: "set make and colour", min: 1, max: 2, run: func(s *Shell, _ context.Context, a []string) error {
			colour := ""
			if len(a) > 1 {
				colour = a[1]
			}
			if err := s.app.NoticeVehicle(a[0], colour); err != nil {
				return err
			}
			v, _ := s.app.Notice()
			s.say("vehicle: %s %s", v.Make, v.Colour)
			return nil
		}},
		{name: "notice gnss", help: "take the position from the GNSS receiver", max: 0, run: func(s *Shell, ctx context.Context, _ []string) error {
			p, err := s.app.NoticeLocate(ctx)
			if err != nil {
				return err
			}
			s.say("position %.5f, %.5f ±%.0f m", p.Lat, p.Lon, p.Accuracy)
			return nil
		}},
		{name: "notice address", usage: "STREET [HOUSE-NUMBER]", help: `set the address, e.g. notice address "Am Markt" 21`, min: 1, max: 2, run: func(s *Shell, _ context.Context, a []string) error {
			street, house := splitAddress(a)
			if err := s.app.NoticeAddress(street, house); err != nil {
				return err
			}
			s.say("address: %s", joinAddress(street, house))
			return nil
		}},
		{name: "notice observe start", usage: "[TIME]", help: "set the start of the observation: now, -65m, 14:05 or RFC 3339", max: 1, run: func(s *Shell, _ context.Context, a []string) error {
			t, err := s.timeArg(a)
			if err != nil {
				return err
			}
			if err := s.app.NoticeObservationStart(t); err != nil {
				return err
			}
			s.say("observation from %s", t.In(s.app.Location()).Format("15:04:05"))
			return nil
		}},
		{name: "notice observe end", usage: "[TIME]", help: "end the observation (now by default)", max: 1, run: func(s *Shell, _ context.Context, a []string) error {
			t, err := s.timeArg(a)
			if err != nil {
				return err
			}
			if err := s.app.NoticeObservationEnd(t); err != nil {
				return err
			}
			s.say("observation until %s", t.In(s.app.Location()).Format("15:04:05"))
			return nil
		}},
		{name: "notice offence search", usage: "WORDS…", help: "search the catalogue by number or words", min: 1, max: -1, run: func(s *Shell, _ context.Context, a []string) error {
			hits := s.app.SearchOffences(strings.Join(a, " "), 10)
			if len(hits) == 0 {
				s.say("no offence found")
			}
			for _, e := range hits {
				s.say("%s  %10s  %s", e.TBNR, e.Amount(), e.Display())
			}
			return nil
		}},
		{name: "notice offence add", usage: "TBNR [CHOICE…]", help: "add an offence, with a choice per placeholder", min: 1, max: -1, run: func(s *Shell, _ context.Context, a []string) error {
			e, err := s.app.NoticeAddOffence(a[0], a[1:]...)
			if err != nil {
				return err
			}
			text, _ := e.Fill(a[1:])
			s.say("offence %s: %s (%s, %s)", e.TBNR, text, e.Amount(), e.Sanction.German())
			return nil
		}},
		{name: "notice offence remove", usage: "TBNR", help: "remove an offence", min: 1, max: 1, run: func(s *Shell, _ context.Context, a []string) error {
			if err := s.app.NoticeRemoveOffence(a[0]); err != nil {
				return err
			}
			s.say("offence %s removed", a[0])
			return nil
		}},
		{name: "notice valve", usage: "POSITION…", help: "note valve positions, e.g. notice valve VL05 HR11", min: 1, max: 4, run: func(s *Shell, _ context.Context, a []string) error {
			for _, v := range a {
				if err := s.app.NoticeValve(v); err != nil {
					return err
				}
			}
			n, _ := s.app.Notice()
			var vs []string
			for _, v := range n.Valves {
				vs = append(vs, v.String())
			}
			s.say("valves: %s", strings.Join(vs, " "))
			return nil
		}},
		{name: "notice photo", usage: "FILE | camera", help: "add a photo from a file (metadata is stripped) or the camera", min: 1, max: 1, run: func(s *Shell, ctx context.Context, a []string) error {
			var err error
			if a[0] == "camera" {
				err = s.app.TakeNoticePhoto(ctx)
			} else {
				var b []byte
				if b, err = s.opts.ReadFile(a[0]); err == nil {
					err = s.app.NoticeAddPhoto(b)
				}
			}
			if err != nil {
				return err
			}
			n, _ := s.app.Notice()
			s.say("photos: %d", n.Photos)
			return nil
		}},
		{name: "notice remark", usage: "TEXT…", help: "set the remarks", min: 1, max: -1, run: func(s *Shell, _ context.Context, a []string) error {
			return s.app.NoticeRemarks(strings.Join(a, " "))
		}},
		{name: "notice circumstance", usage: "TEXT…", help: "add a circumstance", min: 1, max: -1, run: func(s *Shell, _ context.Context, a []string) error {
			return s.app.NoticeCircumstance(strings.Join(a, " "))
		}},
		{name: "notice show", help: "show the notice being filled", max: 0, run: (*Shell).noticeShow},
		{name: "notice check", help: "check the notice: amount, or what is missing, or how long to wait", max: 0, run: (*Shell).noticeCheck},
		{name: "notice issue", help: "save the notice, then print it", max: 0, run: (*Shell).noticeIssue},
		{name: "notice save", help: "save the notice without printing", max: 0, run: func(s *Shell, ctx context.Context, _ []string) error {
			e, _, err := s.app.SaveNotice(ctx)
			if err != nil {
				return err
			}
			s.notice = e.Number
			s.say("notice %s saved (record %s, %s %s)", e.Number, e.ID, e.Sanction, enforcement.FormatEuro(e.AmountCents))
			return nil
		}},
		{name: "notice print", usage: "NUMBER", help: "print a notice of this shift (again)", min: 1, max: 1, run: func(s *Shell, ctx context.Context, a []string) error {
			if err := s.app.PrintNotice(ctx, a[0]); err != nil {
				return err
			}
			s.say("notice %s printed", a[0])
			return nil
		}},
		{name: "notice void", usage: "NUMBER REASON…", help: "void a notice of this shift; it is delivered flagged", min: 2, max: -1, run: func(s *Shell, ctx context.Context, a []string) error {
			e, err := s.app.VoidNotice(ctx, a[0], strings.Join(a[1:], " "))
			if err != nil {
				return err
			}
			s.say("notice %s voided (record %s): %s", e.Number, e.VoidID, e.VoidReason)
			return nil
		}},
		{name: "notice discard", help: "drop the notice being filled", max: 0, run: func(s *Shell, _ context.Context, _ []string) error {
			s.app.DiscardNotice()
			s.say("notice discarded")
			return nil
		}},

		{name: "report new", usage: "[CATEGORY [SEVERITY]]", help: "start a damage report, e.g. report new pothole high", max: 2, run: func(s *Shell, _ context.Context, a []string) error {
			a = append(a, "", "")
			if err := s.app.NewReport(a[0], a[1]); err != nil {
				return err
			}
			v, _ := s.app.Report()
			s.say("new report: %s, %s", v.Category.Label(s.opts.Lang), roadwork.SeverityLabel(v.Severity, s.opts.Lang))
			return nil
		}},
		{name: "report category", usage: "CATEGORY", help: "set the category", min: 1, max: -1, run: func(s *Shell, _ context.Context, a []string) error {
			return s.app.ReportCategory(strings.Join(a, " "))
		}},
		{name: "report severity", usage: "SEVERITY", help: "set the severity: low, medium, high, danger", min: 1, max: -1, run: func(s *Shell, _ context.Context, a []string) error {
			return s.app.ReportSeverity(strings.Join(a, " "))
		}},
		{name: "report gnss", help: "take the position from the GNSS receiver", max: 0, run: func(s *Shell, ctx context.Context, _ []string) error {
			p, err := s.app.ReportLocate(ctx)
			if err != nil {
				return err
			}
			s.say("position %.5f, %.5f ±%.0f m", p.Lat, p.Lon, p.Accuracy)
			return nil
		}},
		{name: "report address", usage: "STREET [HOUSE-NUMBER]", help: "set the address", min: 1, max: 2, run: func(s *Shell, _ context.Context, a []string) error {
			street, house := splitAddress(a)
			if err := s.app.ReportAddress(street, house); err != nil {
				return err
			}
			s.say("address: %s", joinAddress(street, house))
			return nil
		}},
		{name: "report note", usage: "TEXT…", help: "describe the damage", min: 1, max: -1, run: func(s *Shell, _ context.Context, a []string) error {
			return s.app.ReportNote(strings.Join(a, " "))
		}},
		{name: "report photo", usage: "FILE | camera", help: "add a photo (metadata stripped, public copy blurred)", min: 1, max: 1, run: func(s *Shell, ctx context.Context, a []string) error {
			var (
				p   ReportPhoto
				err error
			)
			if a[0] == "camera" {
				p, err = s.app.TakeReportPhoto(ctx)
			} else {
				var b []byte
				if b, err = s.opts.ReadFile(a[0]); err == nil {
					p, err = s.app.ReportAddPhoto(b)
				}
			}
			if err != nil {
				return err
			}
			s.say("photo %d×%d added; public copy: faces blurred: %d, plates blurred: %d", p.Width, p.Height, p.Faces, p.Plates)
			return nil
		}},
		{name: "report show", help: "show the report being filled", max: 0, run: (*Shell).reportShow},
		{name: "report check", help: "check the report", max: 0, run: func(s *Shell, _ context.Context, _ []string) error {
			if err := s.app.CheckReport(); err != nil {
				return err
			}
			s.say("report complete")
			return nil
		}},
		{name: "report submit", help: "file the report for the road-maintenance office", max: 0, run: func(s *Shell, ctx context.Context, _ []string) error {
			e, err := s.app.SubmitReport(ctx)
			if err != nil {
				return err
			}
			s.report = e.ID
			s.say("report %s saved: %s, %s", e.ID, e.Category.Label(s.opts.Lang), e.Status.Label(s.opts.Lang))
			return nil
		}},
		{name: "report discard", help: "drop the report being filled", max: 0, run: func(s *Shell, _ context.Context, _ []string) error {
			s.app.DiscardReport()
			s.say("report discarded")
			return nil
		}},

		{name: "wait notice", usage: "NUMBER STATUS [TIMEOUT]", help: "wait until a notice reached a status (saved … accepted), e.g. wait notice $notice accepted 30s", min: 2, max: 3, run: (*Shell).waitNotice},
		{name: "wait report", usage: "ID STATUS [TIMEOUT]", help: "wait until a report reached a status (saved … solved)", min: 2, max: 3, run: (*Shell).waitReport},
		{name: "wait sent", usage: "[TIMEOUT]", help: "wait until every record is at the fleet server", max: 1, run: (*Shell).waitSent},
		{name: "wait online", usage: "[TIMEOUT]", help: "wait until the handheld is connected", max: 1, run: func(s *Shell, ctx context.Context, a []string) error {
			return s.wait(ctx, a, "online", func() (bool, string) { return s.app.Online(), "offline" })
		}},
	}
}

func (s *Shell) help(_ context.Context, _ []string) error {
	for _, c := range s.cmds {
		s.say("%-28s %s", strings.TrimSpace(c.name+" "+c.usage), c.help)
	}
	s.say("%-28s %s", "fail COMMAND…", "run a command that must fail")
	s.say("$notice and $report stand for the notice and report of the script's last issue and submit.")
	return nil
}

func (s *Shell) login(ctx context.Context, a []string) error {
	o, err := s.app.Login(ctx, a[0], a[1])
	if err != nil {
		return err
	}
	s.say("logged in: %s %s", o.ID, o.Name)
	return nil
}

func (s *Shell) shiftStart(ctx context.Context, _ []string) error {
	sh, err := s.app.StartShift(ctx)
	if err != nil {
		return err
	}
	s.say("shift started at %s", sh.Start.In(s.app.Location()).Format("15:04"))
	return nil
}

func (s *Shell) shiftEnd(ctx context.Context, _ []string) error {
	sh, err := s.app.EndShift(ctx)
	if err != nil {
		return err
	}
	s.say("shift ended at %s (%v)", sh.End.In(s.app.Location()).Format("15:04"), sh.End.Sub(sh.Start).Round(time.Minute))
	return nil
}

func (s *Shell) status(ctx context.Context, _ []string) error {
	st := s.app.ShiftStatus()
	switch {
	case st.Officer != nil:
		s.say("officer: %s %s", st.Officer.ID, st.Officer.Name)
	case !st.LockedUntil.IsZero():
		s.say("officer: none; login locked until %s", st.LockedUntil.In(s.app.Location()).Format("15:04"))
	default:
		s.say("officer: none")
	}
	if st.Shift != nil {
		s.say("shift: %s since %s", st.Shift.Officer, st.Shift.Start.In(s.app.Location()).Format("15:04"))
	} else {
		s.say("shift: none")
	}
	for _, p := range s.app.Peripherals() {
		s.say("%s: %s", p.Name, p.Status)
	}
	q, err := s.app.Queue(ctx)
	if err != nil {
		return err
	}
	online := "offline"
	if s.app.Online() {
		online = "online"
	}
	s.say("sync: %s, %d records not yet at the server; catalogue version %d", online, q, s.app.Catalogue().Version())
	return nil
}

func (s *Shell) cases(ctx context.Context, _ []string) error {
	cs, err := s.app.Cases(ctx, s.opts.Lang)
	if err != nil {
		return err
	}
	if len(cs) == 0 {
		s.say("no cases today")
	}
	for _, c := range cs {
		line := fmt.Sprintf("%s  %-6s  %s  [%s]", c.CreatedAt.In(s.app.Location()).Format("15:04"), kindWord(c.Kind), c.Title, c.StatusText)
		if c.Reference != "" {
			line += "  ref " + c.Reference
		}
		if c.Note != "" {
			line += "  (" + c.Note + ")"
		}
		s.say("%s", line)
	}
	return nil
}

func kindWord(kind string) string {
	if strings.HasPrefix(kind, "enforcement.") {
		return "notice"
	}
	return "report"
}

func (s *Shell) addresses(_ context.Context, _ []string) error {
	for _, a := range s.app.RecentAddresses() {
		s.say("%s", a)
	}
	return nil
}

func (s *Shell) noticePlate(_ context.Context, a []string) error {
	p, err := s.app.NoticePlate(a[0], strings.Join(a[1:], " "))
	if err != nil {
		return err
	}
	s.say("plate: %s (%s)", p, p.Nationality)
	return nil
}

func (s *Shell) noticeShow(_ context.Context, _ []string) error {
	v, ok := s.app.Notice()
	if !ok {
		return ErrNoDraft
	}
	s.say("plate: %s %s", v.Plate.Nationality, v.Plate)
	s.say("vehicle: %s %s", v.Make, v.Colour)
	where := joinAddress(v.Street, v.HouseNumber)
	if v.Position != nil {
		where = strings.TrimSpace(fmt.Sprintf("%s (%.5f, %.5f ±%.0f m)", where, v.Position.Lat, v.Position.Lon, v.Position.Accuracy))
	}
	s.say("location: %s", where)
	end := "running"
	if !v.Observation.End.IsZero() {
		end = v.Observation.End.In(s.app.Location()).Format("15:04:05")
	}
	s.say("observation: %s – %s", v.Observation.Start.In(s.app.Location()).Format("15:04:05"), end)
	for _, o := range v.Offences {
		s.say("offence %s: %s (%s)", o.Entry.TBNR, o.Text, o.Entry.Amount())
	}
	var vs []string
	for _, x := range v.Valves {
		vs = append(vs, x.String())
	}
	s.say("valves: %s; photos: %d", strings.Join(vs, " "), v.Photos)
	if v.Remarks != "" {
		s.say("remarks: %s", v.Remarks)
	}
	return nil
}

func (s *Shell) noticeCheck(_ context.Context, _ []string) error {
	as, err := s.app.CheckNotice()
	var wait *enforcement.ObservationError
	if errors.As(err, &wait) {
		s.say("observe %s longer (offence %s needs %s)", enforcement.FormatDuration(wait.Remaining), wait.TBNR,
			enforcement.FormatDuration(wait.Need))
		return nil
	}
	if err != nil {
		return err
	}
	s.say("complete: %s %s (offence %s leads)", as.Sanction.German(), enforcement.FormatEuro(as.AmountCents), as.Lead.TBNR)
	return nil
}

func (s *Shell) noticeIssue(ctx context.Context, _ []string) error {
	is, err := s.app.IssueNotice(ctx)
	if err != nil {
		return err
	}
	n := is.Notice
	s.notice = n.Number
	line := fmt.Sprintf("notice %s saved (record %s): %s %s", n.Number, is.Entry.ID, n.Sanction, enforcement.FormatEuro(n.AmountCents))
	if n.PaymentRef != "" {
		line += ", payment reference " + n.PaymentRef
	}
	s.say("%s", line)
	if is.PrintErr != nil {
		s.say("notice %s NOT printed: %v", n.Number, is.PrintErr)
	} else {
		s.say("notice %s printed", n.Number)
	}
	return nil
}

func (s *Shell) reportShow(_ context.Context, _ []string) error {
	v, ok := s.app.Report()
	if !ok {
		return ErrNoDraft
	}
	s.say("category: %s; severity: %s", v.Category.Label(s.opts.Lang), roadwork.SeverityLabel(v.Severity, s.opts.Lang))
	where := joinAddress(v.Street, v.HouseNumber)
	if v.Position != nil {
		where = strings.TrimSpace(fmt.Sprintf("%s (%.5f, %.5f ±%.0f m)", where, v.Position.Lat, v.Position.Lon, v.Position.Accuracy))
	}
	s.say("location: %s", where)
	s.say("note: %s", v.Note)
	s.say("photos: %d", len(v.Photos))
	return nil
}

// timeout reads an optional timeout argument.
func (s *Shell) timeout(a []string) (time.Duration, error) {
	if len(a) == 0 {
		return s.opts.Wait, nil
	}
	d, err := time.ParseDuration(a[0])
	if err != nil || d <= 0 || d > s.opts.MaxWait {
		return 0, fmt.Errorf("timeout %q: a duration such as 30s, at most %v", a[0], s.opts.MaxWait)
	}
	return d, nil
}

// wait polls cond until it holds, the timeout passes or ctx ends.
func (s *Shell) wait(ctx context.Context, timeoutArg []string, what string, cond func() (bool, string)) error {
	d, err := s.timeout(timeoutArg)
	if err != nil {
		return err
	}
	start := time.Now()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(s.opts.Poll)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			s.say("%s after %v", what, time.Since(start).Round(100*time.Millisecond))
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("not %s within %v: %s", what, d, state)
		case <-tick.C:
		}
	}
}

func (s *Shell) waitNotice(ctx context.Context, a []string) error {
	number, want := a[0], NoticeStatus(a[1])
	if _, ok := noticeRank[want]; !ok {
		return fmt.Errorf("status %q: want one of %v", a[1], NoticeStatuses())
	}
	return s.wait(ctx, a[2:], fmt.Sprintf("notice %s %s", number, want), func() (bool, string) {
		e, ok := s.app.NoticeEntry(number)
		if !ok {
			return false, "not on the list"
		}
		state := string(e.Status)
		if e.Reference != "" {
			state += ", reference " + e.Reference
		}
		return noticeReached(e.Status, want), state
	})
}

// noticeReached reports whether a notice at cur has reached want: want
// itself, or a later status on the usual way (not a failure).
func noticeReached(cur, want NoticeStatus) bool {
	if cur == want {
		return true
	}
	return !want.Attention() && !cur.Attention() && noticeRank[cur] > noticeRank[want]
}

// reportWay is the usual way of a report's statuses.
var reportWay = []roadwork.Status{roadwork.StatusSaved, roadwork.StatusSending, roadwork.StatusSent,
	roadwork.StatusReceived, roadwork.StatusChecked, roadwork.StatusInProgress, roadwork.StatusSolved}

func (s *Shell) waitReport(ctx context.Context, a []string) error {
	id, err := uuid.Parse(a[0])
	if err != nil {
		return fmt.Errorf("report %q: not a record id", a[0])
	}
	want := roadwork.Status(a[1])
	if !slices.Contains(roadwork.Statuses(), want) {
		return fmt.Errorf("status %q: want one of %v", a[1], roadwork.Statuses())
	}
	return s.wait(ctx, a[2:], fmt.Sprintf("report %s %s", id, want), func() (bool, string) {
		e, ok := s.app.ReportEntry(id)
		if !ok {
			return false, "not on the list"
		}
		state := string(e.Status)
		if e.Reference != "" {
			state += ", reference " + e.Reference
		}
		if e.Note != "" {
			state += ", note " + strconv.Quote(e.Note)
		}
		cur, w := slices.Index(reportWay, e.Status), slices.Index(reportWay, want)
		return e.Status == want || (cur >= 0 && w >= 0 && cur > w), state
	})
}

func (s *Shell) waitSent(ctx context.Context, a []string) error {
	return s.wait(ctx, a, "every record at the server", func() (bool, string) {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		q, err := s.app.Queue(qctx)
		if err != nil {
			return false, err.Error()
		}
		return q == 0, fmt.Sprintf("%d records not yet at the server", q)
	})
}

// timeArg reads a time: absent or "now", "-65m" (that long ago), "14:05"
// or "14:05:30" (today, office time), or RFC 3339.
func (s *Shell) timeArg(a []string) (time.Time, error) {
	now := s.app.Now()
	if len(a) == 0 || a[0] == "now" {
		return now, nil
	}
	return ParseScriptTime(a[0], now, s.app.Location())
}

// ParseScriptTime reads a time of a script relative to now: "now",
// "-65m" (that long ago), "14:05" or "14:05:30" (today in loc), or RFC
// 3339.
func ParseScriptTime(v string, now time.Time, loc *time.Location) (time.Time, error) {
	switch {
	case v == "now":
		return now, nil
	case strings.HasPrefix(v, "-"):
		d, err := time.ParseDuration(v[1:])
		if err != nil || d < 0 {
			return time.Time{}, fmt.Errorf("time %q: -DURATION such as -65m", v)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{"15:04", "15:04:05"} {
		if t, err := time.ParseInLocation(layout, v, loc); err == nil {
			y, m, d := now.In(loc).Date()
			return time.Date(y, m, d, t.Hour(), t.Minute(), t.Second(), 0, loc), nil
		}
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: now, -DURATION (-65m), HH:MM or RFC 3339", v)
	}
	return t, nil
}

// splitAddress takes STREET [HOUSE-NUMBER].
func splitAddress(a []string) (street, house string) {
	if len(a) > 1 {
		return a[0], a[1]
	}
	return a[0], ""
}
