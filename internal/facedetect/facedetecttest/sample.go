// Package facedetecttest gives tests a real face photo: pigo's test image
// (testdata/sample.jpg of github.com/esimov/pigo, a frontal portrait of
// 320×400 pixels on a light background). It is read from the pigo module
// the build already uses, so the photo is not copied into this repository.
package facedetecttest

import (
	"bytes"
	"fmt"
	"image"
	_ "image/jpeg" // the sample is a JPEG
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// SampleSize is the size of the sample photo.
var SampleSize = image.Pt(320, 400)

var sample = sync.OnceValues(func() (image.Image, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/esimov/pigo").Output()
	if err != nil {
		return nil, fmt.Errorf("locate the pigo module with go list: %w", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return nil, fmt.Errorf("pigo module not downloaded; run go mod download github.com/esimov/pigo")
	}
	b, err := os.ReadFile(filepath.Join(dir, "testdata", "sample.jpg"))
	if err != nil {
		return nil, fmt.Errorf("read pigo's sample photo: %w", err)
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("decode pigo's sample photo: %w", err)
	}
	return img, nil
})

// Sample returns pigo's sample photo. When it cannot be read the test is
// skipped, or fails when CI=true.
func Sample(t testing.TB) image.Image {
	t.Helper()
	img, err := sample()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("sample face photo: %v", err)
		}
		t.Skipf("sample face photo unavailable: %v", err)
	}
	return img
}
