package enforcement

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestNoticeNumber(t *testing.T) {
	n := NoticeNumber{Prefix: "HB42", Seq: 123}
	s := n.String()
	if s != "HB42-0000123-1" {
		t.Fatalf("number %q", s)
	}
	got, err := ParseNoticeNumber(" " + strings.ToLower(s) + " ")
	if err != nil || got != n {
		t.Fatalf("parse %q: %+v %v", s, got, err)
	}
	if n.Compact() != strings.ReplaceAll(s, "-", "") {
		t.Fatalf("compact %q", n.Compact())
	}
	big := NoticeNumber{Prefix: "ABCDEFGH", Seq: maxSeq}
	if got, err := ParseNoticeNumber(big.String()); err != nil || got != big {
		t.Fatalf("largest number %q: %v", big, err)
	}
	if err := CheckPaymentReference(big.PaymentReference()); err != nil || len(big.PaymentReference()) != 25 {
		t.Fatalf("reference of the largest number %q: %v", big.PaymentReference(), err)
	}
	for _, bad := range []string{
		"", "HB42-0000123", "HB42-0000123-17", "hb42_0000123-7", "4HB-0000123-7", "HB42-123-7",
		"HB42-0000123-X", "ABCDEFGHI-0000123-7", "HB42-0000123-1-1", strings.Repeat("A", 65),
	} {
		if _, err := ParseNoticeNumber(bad); !errors.Is(err, ErrNoticeNumber) {
			t.Errorf("ParseNoticeNumber(%q): %v", bad, err)
		}
	}
}

// TestCheckDigit shows that the check digit finds every wrong digit and
// every swap of neighbouring different digits of the sequence.
func TestCheckDigit(t *testing.T) {
	for _, seq := range []uint64{1, 123, 4711, 9876543, 1020304} {
		n := NoticeNumber{Prefix: "HB42", Seq: seq}
		s := n.String()
		digits := []byte(s[5:12])
		try := func(mutated []byte, what string) {
			m := s[:5] + string(mutated) + s[12:]
			if _, err := ParseNoticeNumber(m); err == nil {
				t.Errorf("%s: %s → %s passes the check", what, s, m)
			}
		}
		for i := range digits {
			for d := byte('0'); d <= '9'; d++ {
				if d == digits[i] {
					continue
				}
				m := append([]byte(nil), digits...)
				m[i] = d
				try(m, "wrong digit")
			}
			if i+1 < len(digits) && digits[i] != digits[i+1] {
				m := append([]byte(nil), digits...)
				m[i], m[i+1] = m[i+1], m[i]
				try(m, "swap")
			}
		}
		// A wrong check digit.
		c, _ := strconv.Atoi(s[len(s)-1:])
		if _, err := ParseNoticeNumber(s[:len(s)-1] + strconv.Itoa((c+1)%10)); err == nil {
			t.Errorf("wrong check digit passes for %s", s)
		}
	}
}

func TestPaymentReference(t *testing.T) {
	// The example of ISO 11649.
	if err := CheckPaymentReference("RF18 5390 0754 7034"); err != nil {
		t.Fatal(err)
	}
	n := NoticeNumber{Prefix: "HB42", Seq: 123}
	ref := n.PaymentReference()
	if !strings.HasPrefix(ref, "RF") || !strings.HasSuffix(ref, n.Compact()) {
		t.Fatalf("reference %q", ref)
	}
	if err := CheckPaymentReference(Group4(ref)); err != nil {
		t.Fatalf("grouped reference %q: %v", Group4(ref), err)
	}
	for _, bad := range []string{
		"", "RF", "RF18", "RF19 5390 0754 7034", "RF18 5390 0754 7043", "XX18 5390", "RF1X 5390",
		"RF18" + strings.Repeat("1", 22), ref[:len(ref)-1] + "0",
	} {
		if bad == ref {
			continue
		}
		if err := CheckPaymentReference(bad); err == nil {
			t.Errorf("CheckPaymentReference(%q) accepted", bad)
		}
	}
}

func TestCheckIBAN(t *testing.T) {
	for _, ok := range []string{"DE89 3704 0044 0532 0130 00", "DE89370400440532013000", "GB29 NWBK 6016 1331 9268 19"} {
		if err := CheckIBAN(ok); err != nil {
			t.Errorf("CheckIBAN(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "DE88 3704 0044 0532 0130 00", "DE89 3704", "1234567890123456", "DE89-3704-0044-0532-0130-00"} {
		if err := CheckIBAN(bad); err == nil {
			t.Errorf("CheckIBAN(%q) accepted", bad)
		}
	}
	if g := Group4("DE89370400440532013000"); g != "DE89 3704 0044 0532 0130 00" {
		t.Fatalf("Group4: %q", g)
	}
}

func TestCheckPrefix(t *testing.T) {
	for _, ok := range []string{"H", "HB42", "ABCDEFGH"} {
		if err := CheckPrefix(ok); err != nil {
			t.Errorf("CheckPrefix(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "hb42", "4HB", "HB-42", "ABCDEFGHI", "HBÄ"} {
		if err := CheckPrefix(bad); err == nil {
			t.Errorf("CheckPrefix(%q) accepted", bad)
		}
	}
}

func TestMemorySequencer(t *testing.T) {
	ctx := context.Background()
	s := NewMemorySequencer(41)
	if n, err := s.Next(ctx); err != nil || n != 42 {
		t.Fatalf("first %d %v", n, err)
	}
	concurrentUnique(t, s)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Next(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	full := NewMemorySequencer(maxSeq)
	if _, err := full.Next(ctx); err == nil || !strings.Contains(err.Error(), "new prefix") {
		t.Fatalf("exhausted: %v", err)
	}
}

// concurrentUnique draws numbers from several goroutines and checks that
// none repeats.
func concurrentUnique(t *testing.T, s Sequencer) {
	t.Helper()
	const workers, each = 4, 25
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				n, err := s.Next(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[n] {
					t.Errorf("number %d handed out twice", n)
				}
				seen[n] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != workers*each {
		t.Fatalf("%d numbers, want %d", len(seen), workers*each)
	}
}

func TestFileSequencer(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "notice.seq")
	s, err := OpenFileSequencer(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "0\n" {
		t.Fatalf("new file %q %v", b, err)
	}
	for want := uint64(1); want <= 3; want++ {
		if n, err := s.Next(ctx); err != nil || n != want {
			t.Fatalf("next %d %v, want %d", n, err, want)
		}
	}
	// A restart continues after the last number handed out.
	s2, err := OpenFileSequencer(path)
	if err != nil {
		t.Fatal(err)
	}
	if s2.Last() != 3 {
		t.Fatalf("last %d after restart", s2.Last())
	}
	if n, err := s2.Next(ctx); err != nil || n != 4 {
		t.Fatalf("next after restart %d %v", n, err)
	}
	concurrentUnique(t, s2)
	if s3, err := OpenFileSequencer(path); err != nil || s3.Last() != 104 {
		t.Fatalf("after concurrent use: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
	// A damaged file is an error, never a restart at 1.
	for _, junk := range []string{"", "abc\n", "-1\n", "1 2\n", "99999999999999999999999\n"} {
		if err := os.WriteFile(path, []byte(junk), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenFileSequencer(path); err == nil || !strings.Contains(err.Error(), "would repeat notice numbers") {
			t.Errorf("file %q: %v", junk, err)
		}
	}
	// An unwritable directory fails Next and keeps the number.
	if os.Getuid() != 0 {
		dir := filepath.Join(t.TempDir(), "ro")
		os.Mkdir(dir, 0o755)
		ro, err := OpenFileSequencer(filepath.Join(dir, "seq"))
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(dir, 0o555)
		defer os.Chmod(dir, 0o755)
		if _, err := ro.Next(ctx); err == nil {
			t.Fatal("Next succeeded without storing")
		}
		if ro.Last() != 0 {
			t.Fatalf("last %d after a failed store", ro.Last())
		}
	}
}

func BenchmarkFileSequencer(b *testing.B) {
	s, err := OpenFileSequencer(filepath.Join(b.TempDir(), "seq"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Next(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
