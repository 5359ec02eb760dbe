package alerts

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

func openStore(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "kogge.db"), store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// addDevice enrolls a device in group with a certificate valid until
// notAfter (ms).
func addDevice(t *testing.T, db *store.DB, group, id string, notAfter int64) {
	t.Helper()
	ctx := context.Background()
	if err := db.CreateGroup(ctx, store.Group{ID: group, Name: "group " + group, CreatedAt: 1}); err != nil && !errors.Is(err, store.ErrGroupExists) {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("code-" + id))
	if err := db.CreateEnrollCode(ctx, store.EnrollCode{ID: "c-" + id, Hash: h[:], GroupID: group, CreatedAt: 1, ExpiresAt: 1 << 50}); err != nil {
		t.Fatal(err)
	}
	_, _, err := db.Enroll(ctx, h[:], 2, func(string, string) (store.Device, store.DeviceCert, error) {
		return store.Device{ID: id, CreatedAt: 2, Peripherals: "[]", InventoryAt: 2},
			store.DeviceCert{Serial: "ab" + id, NotBefore: 1, NotAfter: notAfter, CreatedAt: 2}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func setPresence(t *testing.T, db *store.DB, device string, online bool, at time.Time) {
	t.Helper()
	state := protocol.Offline
	if online {
		state = protocol.Online
	}
	err := db.Ingest(context.Background(), func(tx *store.IngestTx) error {
		_, err := tx.ApplyPresence(context.Background(), device,
			&protocol.Presence{State: state, Session: uuid.New(), At: protocol.At(at)}, at.UnixMilli())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func putHeartbeat(t *testing.T, db *store.DB, device string, hb protocol.Heartbeat, at time.Time) {
	t.Helper()
	if hb.Software == "" {
		hb.Software = "1.0.0"
	}
	hb.Clock = protocol.At(at)
	err := db.Ingest(context.Background(), func(tx *store.IngestTx) error {
		return tx.PutHeartbeat(context.Background(), device, &hb, at.UnixMilli(), 1)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// hookSink is a webhook receiver on loopback that fails the first
// failFirst requests.
type hookSink struct {
	URL       string
	mu        sync.Mutex
	failFirst int
	got       []received
}

type received struct {
	body      string
	signature string
}

func newHookSink(t *testing.T, failFirst int) *hookSink {
	s := &hookSink{failFirst: failFirst}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.failFirst > 0 {
			s.failFirst--
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		s.got = append(s.got, received{body: string(b), signature: r.Header.Get("X-Kogge-Signature")})
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *hookSink) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

// smtpSink is a tiny SMTP server on loopback that keeps the messages it
// receives (no TLS; the mailer runs with SMTPPlain against it).
type smtpSink struct {
	Addr string
	mu   sync.Mutex
	msgs []sentMail
	wg   sync.WaitGroup
}

type sentMail struct {
	from, to, data string
}

func newSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpSink{Addr: ln.Addr().String()}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *smtpSink) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	say := func(l string) { _, _ = io.WriteString(c, l+"\r\n") }
	say("220 sink ESMTP")
	var m sentMail
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250-sink")
			say("250 8BITMIME")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			m.from = strings.TrimSpace(line[len("MAIL FROM:"):])
			say("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			m.to = strings.TrimSpace(line[len("RCPT TO:"):])
			say("250 ok")
		case cmd == "DATA":
			say("354 go on")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(l)
			}
			m.data = b.String()
			s.mu.Lock()
			s.msgs = append(s.msgs, m)
			s.mu.Unlock()
			m = sentMail{}
			say("250 queued")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("250 ok")
		}
	}
}

func (s *smtpSink) received() []sentMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sentMail(nil), s.msgs...)
}
