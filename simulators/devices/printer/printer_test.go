package printer

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestTCPAndOutDir(t *testing.T) {
	out := t.TempDir()
	sim, err := Start(context.Background(), Options{OutDir: out})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	job, err := os.ReadFile(noticeBytes)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", sim.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	// Status request first, as the driver does; then the job in pieces.
	c.Write([]byte{0x10, 0x04, 0x04})
	ans := make([]byte, 1)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(ans); err != nil || ans[0] != 0x12 {
		t.Fatalf("status answer %x, %v", ans, err)
	}
	for len(job) > 0 {
		n := min(len(job), 100)
		c.Write(job[:n])
		job = job[n:]
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := sim.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join("testdata", "notice.txt"))
	if r.Text != string(want) {
		t.Fatalf("receipt over TCP differs from the golden rendering:\n%s", r.Text)
	}
	txt, err := os.ReadFile(filepath.Join(out, "receipt-0001.txt"))
	if err != nil || !bytes.Equal(txt, want) {
		t.Fatalf("receipt-0001.txt: %v", err)
	}
	png, err := os.ReadFile(filepath.Join(out, "receipt-0001.png"))
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("receipt-0001.png: %v", err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, err := sim.Next(short); err == nil {
		t.Fatal("a second receipt appeared")
	}
}
