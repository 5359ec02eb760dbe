package store

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to Open as a store file: the outside input
// the store reads is its own file, which a crash, a bad flash cell or a
// person may have damaged. Open must never panic; it either opens the file,
// moves it aside and starts afresh, or returns an error. An opened store
// must take a capture.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	real := filepath.Join(dir, "real.db")
	s, err := Open(real, Options{Logger: discardLogger()})
	if err != nil {
		f.Fatal(err)
	}
	r := newRand(f)
	for range 3 {
		if _, err := s.Save(testCtx(f), sample(r, 300, 5000)); err != nil {
			f.Fatal(err)
		}
	}
	s.Close()
	b, err := os.ReadFile(real)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add(b[:100])
	f.Add([]byte{})
	f.Add([]byte(sqliteHeader))
	f.Add([]byte("not a database"))

	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "outbox.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path, Options{Logger: discardLogger()})
		if err != nil {
			return // refused, and said so
		}
		defer s.Close()
		ctx := testCtx(t)
		if moved := s.MovedAside(); moved != "" {
			got, err := os.ReadFile(moved)
			if err != nil || string(got) != string(data) {
				t.Fatalf("moved-aside file differs from the original: %v", err)
			}
		}
		s.List(ctx, 0, 10)
		s.Pending(ctx, 0, 10)
		if _, err := s.Save(ctx, sample(newRand(t), 10, 10)); err != nil && !errors.Is(err, ErrFull) {
			// A file that passed quick_check but is not our schema may
			// refuse writes; it must not panic, and must say why.
			if err.Error() == "" {
				t.Fatal("Save failed without a message")
			}
		}
	})
}
