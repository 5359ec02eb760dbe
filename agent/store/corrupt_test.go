package store

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kogge-fleet/kogge/protocol"
)

// realStore writes a store with some records and blobs at path and closes
// it, so that everything is in the main file.
func realStore(t *testing.T, path string) {
	t.Helper()
	s := openAt(t, path, Options{})
	r := newRand(t)
	for range 30 {
		mustSave(t, s, sample(r, 2000, 20<<10))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("store left a -wal file after Close: %v", err)
	}
}

func TestCorruptStoreMovedAside(t *testing.T) {
	tests := []struct {
		name string
		// damage prepares the file at path (and maybe -wal, -shm).
		damage func(t *testing.T, path string)
	}{
		{"random bytes", func(t *testing.T, path string) {
			write(t, path, randBytes(newRand(t), 64<<10))
		}},
		{"random bytes with wal and shm", func(t *testing.T, path string) {
			r := newRand(t)
			write(t, path, randBytes(r, 64<<10))
			write(t, path+"-wal", randBytes(r, 8<<10))
			write(t, path+"-shm", randBytes(r, 32<<10))
		}},
		{"a text file", func(t *testing.T, path string) {
			write(t, path, []byte("this is not a database\n"))
		}},
		{"garbled pages", func(t *testing.T, path string) {
			realStore(t, path)
			b := read(t, path)
			r := newRand(t)
			for page := 1; page*4096 < len(b); page += 3 {
				copy(b[page*4096:], randBytes(r, 64))
			}
			write(t, path, b)
		}},
		{"truncated", func(t *testing.T, path string) {
			realStore(t, path)
			b := read(t, path)
			write(t, path, b[:len(b)/2])
		}},
		{"empty file with a write-ahead log", func(t *testing.T, path string) {
			write(t, path, nil)
			write(t, path+"-wal", randBytes(newRand(t), 4096))
		}},
		{"garbled pages with a hot write-ahead log", func(t *testing.T, path string) {
			crashedCopy(t, path, 300<<10) // 6 MB: some of it checkpointed into the main file
			b := read(t, path)
			r := newRand(t)
			for page := 1; page*4096 < len(b); page++ {
				copy(b[page*4096:], randBytes(r, 64))
			}
			write(t, path, b)
		}},
		{"garbled header", func(t *testing.T, path string) {
			realStore(t, path)
			b := read(t, path)
			copy(b[16:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
			write(t, path, b)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := testPath(t)
			tt.damage(t, path)
			original := map[string][]byte{}
			for _, suffix := range []string{"", "-wal", "-shm"} {
				if b, err := os.ReadFile(path + suffix); err == nil {
					original[suffix] = b
				}
			}
			clock := newClock()
			var logs logBuffer
			s := openAt(t, path, Options{Now: clock.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			moved := s.MovedAside()
			want := path + ".corrupt-20261201T093000Z"
			if moved != want {
				t.Fatalf("MovedAside = %q, want %q", moved, want)
			}
			for suffix, b := range original {
				if got, err := os.ReadFile(moved + suffix); err != nil || !bytes.Equal(got, b) {
					t.Errorf("moved %q: %d bytes, %v; want the original %d bytes", suffix, len(got), err, len(b))
				}
			}
			if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, moved) {
				t.Errorf("log does not report the move at ERROR:\n%s", l)
			}
			// A fresh store in its place.
			if rec := mustSave(t, s, sample(newRand(t), 10)); rec.Seq != 1 {
				t.Errorf("first seq of the fresh store = %d", rec.Seq)
			}
			s.Close()
			s = openAt(t, path, Options{})
			if s.MovedAside() != "" {
				t.Errorf("the fresh store was moved aside too: %s", s.MovedAside())
			}
		})
	}
}

// crashedCopy leaves at path a copy of an open store whose last commits
// are only in its write-ahead log, as after a crash: 20 records with a blob
// of blobSize bytes each. It returns the records.
func crashedCopy(t *testing.T, path string, blobSize int) []protocol.Record {
	t.Helper()
	src := testPath(t)
	s := openAt(t, src, Options{})
	r := newRand(t)
	var recs []protocol.Record
	for range 20 {
		recs = append(recs, mustSave(t, s, sample(r, 500, blobSize)))
	}
	if _, err := os.Stat(src + "-wal"); err != nil {
		t.Fatalf("open store has no -wal file: %v", err)
	}
	write(t, path, read(t, src))
	write(t, path+"-wal", read(t, src+"-wal"))
	return recs
}

func TestOpenAfterCrash(t *testing.T) {
	// A sound store with a hot write-ahead log opens without a move and
	// with every record.
	path := testPath(t)
	recs := crashedCopy(t, path, 3000)
	s := openAt(t, path, Options{})
	if s.MovedAside() != "" {
		t.Fatalf("a sound store with a hot log was moved aside: %s", s.MovedAside())
	}
	ctx := testCtx(t)
	for _, rec := range recs {
		if e, err := s.Get(ctx, rec.ID); err != nil || e.Seq != rec.Seq {
			t.Fatalf("record %d after the crash: %+v, %v", rec.Seq, e, err)
		}
		if data, err := readAll(ctx, s, rec.Blobs[0].ID); err != nil || sum(data) != rec.Blobs[0].SHA256 {
			t.Fatalf("blob of record %d after the crash: %v", rec.Seq, err)
		}
	}
}

func TestCorruptStoreNeverOverwrites(t *testing.T) {
	path := testPath(t)
	clock := newClock()
	taken := path + ".corrupt-20261201T093000Z"
	write(t, taken, []byte("an earlier corrupt store"))
	write(t, path, []byte("garbage"))
	s := openAt(t, path, Options{Now: clock.Now})
	if s.MovedAside() != taken+"-2" {
		t.Errorf("MovedAside = %q, want %q", s.MovedAside(), taken+"-2")
	}
	if b := read(t, taken); string(b) != "an earlier corrupt store" {
		t.Errorf("the earlier file was overwritten: %q", b)
	}
	if b := read(t, taken+"-2"); string(b) != "garbage" {
		t.Errorf("moved file = %q", b)
	}
}

func TestOpenErrorIsNotCorruption(t *testing.T) {
	// A directory where the file should be: SQLite cannot open it, but it
	// is not a damaged store and must not be moved.
	path := testPath(t)
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(path, Options{Logger: discardLogger()}); err == nil {
		s.Close()
		t.Fatal("Open of a directory succeeded")
	}
	if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
		t.Errorf("the directory was moved: %v", err)
	}
	matches, _ := filepath.Glob(path + ".corrupt-*")
	if len(matches) != 0 {
		t.Errorf("moved aside: %v", matches)
	}
}

func TestOpenEmptyFile(t *testing.T) {
	// An empty file is an empty SQLite database, not a damaged one.
	path := testPath(t)
	write(t, path, nil)
	s := openAt(t, path, Options{})
	if s.MovedAside() != "" {
		t.Errorf("an empty file was moved aside to %s", s.MovedAside())
	}
	mustSave(t, s, sample(newRand(t), 10))
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
