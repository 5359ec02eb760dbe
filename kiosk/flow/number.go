package flow

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Application numbers
//
// A terminal gives every session an application number at its start, with
// no network: the citizen reads it on the screen, the receipt prints it
// with a QR code, and the clerk scans it at the counter. The format is
//
//	PREFIX-YYMMDD-NNNN-C     e.g. KMI1-261129-0042-7
//
// PREFIX is the terminal's code (2 to 8 capital letters and digits, unique
// in the city: it makes numbers of different terminals differ); YYMMDD is
// the terminal's local date; NNNN is the day's sequence from 0001 (more
// digits after 9999); C is a check character over the letters and digits
// before it (hyphens left out) by ISO/IEC 7064 MOD 37,36, so that a
// mistyped character or two swapped neighbours are noticed. The sequence
// is persisted in the agent's store before a number is handed out, so a
// number is never given twice, also across restarts; numbers of cancelled
// sessions stay unused.

// KV is the persistent key-value store the sequence is kept in
// (agent/store.Store has it).
type KV interface {
	GetValue(ctx context.Context, key string) ([]byte, bool, error)
	PutValue(ctx context.Context, key string, value []byte) error
}

// Numbers hands out application numbers.
type Numbers interface {
	// Next returns a new application number for a session starting at t.
	Next(ctx context.Context, t time.Time) (string, error)
}

// Sequence is the Numbers of one terminal, persisted in a KV.
type Sequence struct {
	prefix string
	kv     KV
	loc    *time.Location
	mu     sync.Mutex
}

// numberKey is where the last number's day and sequence are kept.
const numberKey = "kiosk.application-number"

// NewSequence returns the numbers of the terminal with prefix, kept in kv,
// dated in loc (time.Local if nil).
func NewSequence(prefix string, kv KV, loc *time.Location) (*Sequence, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	if kv == nil {
		return nil, errors.New("application numbers: no store to keep the sequence in")
	}
	if loc == nil {
		loc = time.Local
	}
	return &Sequence{prefix: prefix, kv: kv, loc: loc}, nil
}

func checkPrefix(p string) error {
	if len(p) < 2 || len(p) > 8 || strings.Trim(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" {
		return fmt.Errorf("application number prefix %q: want 2 to 8 capital letters and digits, unique per terminal", p)
	}
	return nil
}

// Next implements Numbers: the next sequence number of t's day, persisted
// before it is returned.
func (s *Sequence) Next(ctx context.Context, t time.Time) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	day := t.In(s.loc).Format("060102")
	n := 1
	b, ok, err := s.kv.GetValue(ctx, numberKey)
	if err != nil {
		return "", fmt.Errorf("application number: %w", err)
	}
	if ok {
		lastDay, seq, found := strings.Cut(string(b), ":")
		last, err := strconv.Atoi(seq)
		if !found || err != nil || last < 0 {
			return "", fmt.Errorf("application number: the stored sequence %q is damaged; "+
				"remove the key %s from the store to start the day's sequence again", b, numberKey)
		}
		if lastDay == day {
			n = last + 1
		}
	}
	if err := s.kv.PutValue(ctx, numberKey, []byte(day+":"+strconv.Itoa(n))); err != nil {
		return "", fmt.Errorf("application number: %w", err)
	}
	return FormatNumber(s.prefix, t.In(s.loc), n)
}

// FormatNumber returns the application number of the terminal with prefix
// for the n-th session of t's day (in t's location).
func FormatNumber(prefix string, t time.Time, n int) (string, error) {
	if err := checkPrefix(prefix); err != nil {
		return "", err
	}
	if n < 1 {
		return "", fmt.Errorf("application number: sequence %d, want 1 or more", n)
	}
	body := fmt.Sprintf("%s-%s-%04d", prefix, t.Format("060102"), n)
	c, _ := checkChar(strings.ReplaceAll(body, "-", ""))
	return body + "-" + string(c), nil
}

// Number is a parsed application number.
type Number struct {
	Prefix string
	Date   time.Time // the day, at midnight UTC
	Seq    int
}

// ParseNumber parses and checks an application number as a clerk scans or
// types it (lower case is accepted). It fails on anything else with an
// error that says what is wrong.
func ParseNumber(s string) (Number, error) {
	if len(s) > 40 {
		return Number{}, fmt.Errorf("application number of %d characters: too long", len(s))
	}
	s = strings.ToUpper(strings.TrimSpace(s))
	parts := strings.Split(s, "-")
	if len(parts) != 4 {
		return Number{}, errors.New("application number: want PREFIX-YYMMDD-NNNN-C")
	}
	if err := checkPrefix(parts[0]); err != nil {
		return Number{}, err
	}
	date, err := time.Parse("060102", parts[1])
	if err != nil || len(parts[1]) != 6 {
		return Number{}, fmt.Errorf("application number: %q is no date YYMMDD", parts[1])
	}
	seq, err := strconv.Atoi(parts[2])
	if err != nil || len(parts[2]) < 4 || len(parts[2]) > 9 || seq < 1 || strings.Trim(parts[2], "0123456789") != "" {
		return Number{}, fmt.Errorf("application number: %q is no sequence number", parts[2])
	}
	if len(parts[3]) != 1 {
		return Number{}, errors.New("application number: the check character is missing")
	}
	want, ok := checkChar(parts[0] + parts[1] + parts[2])
	if !ok || parts[3][0] != want {
		return Number{}, errors.New("application number: the check character does not match; a character was mistyped")
	}
	return Number{Prefix: parts[0], Date: date, Seq: seq}, nil
}

const alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

// checkChar returns the ISO/IEC 7064 MOD 37,36 check character of s
// (digits and capital letters); false if s holds anything else.
func checkChar(s string) (byte, bool) {
	const m = 36
	p := m
	for i := 0; i < len(s); i++ {
		v := strings.IndexByte(alnum, s[i])
		if v < 0 {
			return 0, false
		}
		sum := (p + v) % m
		if sum == 0 {
			sum = m
		}
		p = (2 * sum) % (m + 1)
	}
	return alnum[(m+1-p)%m], true
}
