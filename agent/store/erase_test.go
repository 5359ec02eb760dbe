package store

import (
	"bytes"
	"math/rand/v2"
	"os"
	"testing"
)

// After the server's ack, neither the sealed body nor the blob bytes remain
// anywhere in the store's files, not even in free pages.
func TestAckedDataLeavesTheDisk(t *testing.T) {
	path := testPath(t)
	s, err := Open(path, Options{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	marker := []byte("BIOMETRIC-MARKER-7f3a9c")
	c := sample(rand.New(rand.NewPCG(1, 2)), 64, 200_000)
	c.Sealed = append(bytes.Repeat(marker, 20), c.Sealed...)
	c.Blobs[0].Data = append(bytes.Repeat(marker, 1000), c.Blobs[0].Data...)
	rec := mustSave(t, s, c)
	if err := s.MarkStored(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkBlobComplete(ctx, rec.Blobs[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, name := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(name)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		found = found || len(b) > 0
		if bytes.Contains(b, marker) {
			t.Errorf("%s still holds acknowledged personal data", name)
		}
	}
	if !found {
		t.Fatal("no store files to check")
	}
}
