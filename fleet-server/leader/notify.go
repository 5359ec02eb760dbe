package leader

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/kogge-fleet/kogge/fleet-server/store"
)

// MaxPayload bounds a notification's payload (PostgreSQL's limit is 8000
// bytes).
const MaxPayload = 7900

// Notifier fans messages out to every replica of the fleet through one
// PostgreSQL channel (NOTIFY; LISTEN on a dedicated connection per
// replica), for example the dashboard's live updates of an alert that the
// evaluator on another replica raised. The channel's name is derived from
// the name given and the store's schema. Delivery is best effort: a
// notification sent while a replica's listening connection is down does not
// reach it (the listener reconnects within a second or so). With SQLite,
// Notify calls the process's listeners directly.
type Notifier struct {
	db   *store.DB
	name string
	log  *slog.Logger

	mu       sync.Mutex
	channel  string
	handlers map[int]func(payload []byte)
	next     int
}

// NewNotifier returns a notifier for the channel name (lower-case letters,
// digits and '_', at most 30 characters).
func NewNotifier(db *store.DB, name string, logger *slog.Logger) (*Notifier, error) {
	if db == nil {
		return nil, errors.New("notifier: no store")
	}
	if name == "" || len(name) > 30 {
		return nil, fmt.Errorf("notifier: channel name %q must be 1 to 30 characters", name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return nil, fmt.Errorf("notifier: channel name %q: only a-z, 0-9 and '_'", name)
		}
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Notifier{db: db, name: name, log: logger, handlers: map[int]func([]byte){}}, nil
}

// channelName returns the channel of this notifier in the store's schema.
func (n *Notifier) channelName(ctx context.Context, queryRow func(ctx context.Context, query string, args ...any) *sql.Row) (string, error) {
	n.mu.Lock()
	c := n.channel
	n.mu.Unlock()
	if c != "" {
		return c, nil
	}
	var schema string
	if err := queryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return "", fmt.Errorf("read the schema: %w", err)
	}
	c = "kogge_" + n.name + "_" + strconv.FormatInt(int64(hash31(schema)), 36)
	n.mu.Lock()
	n.channel = c
	n.mu.Unlock()
	return c, nil
}

// Notify sends payload to the listeners of every replica, this one's
// included. payload must be valid text of at most MaxPayload bytes.
func (n *Notifier) Notify(ctx context.Context, payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("notify %s: payload of %d bytes, at most %d", n.name, len(payload), MaxPayload)
	}
	if n.db.Dialect() != store.Postgres {
		n.deliver(payload)
		return nil
	}
	channel, err := n.channelName(ctx, n.db.Reader().QueryRowContext)
	if err != nil {
		return fmt.Errorf("notify %s: %w", n.name, err)
	}
	if _, err := n.db.Reader().ExecContext(ctx, `SELECT pg_notify($1, $2)`, channel, string(payload)); err != nil {
		return fmt.Errorf("notify %s: %w", n.name, err)
	}
	return nil
}

func (n *Notifier) deliver(payload []byte) {
	n.mu.Lock()
	hs := make([]func([]byte), 0, len(n.handlers))
	for _, h := range n.handlers {
		hs = append(hs, h)
	}
	n.mu.Unlock()
	for _, h := range hs {
		h(payload)
	}
}

// Listen calls fn with every notification until ctx ends, then returns
// nil. fn runs on the listener's goroutine and must return quickly. On
// PostgreSQL it keeps a dedicated connection and reconnects when it breaks.
func (n *Notifier) Listen(ctx context.Context, fn func(payload []byte)) error {
	if fn == nil {
		return errors.New("notifier: listen with a nil handler")
	}
	n.mu.Lock()
	id := n.next
	n.next++
	n.handlers[id] = fn
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.handlers, id)
		n.mu.Unlock()
	}()
	if n.db.Dialect() != store.Postgres {
		<-ctx.Done()
		return nil
	}
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := n.listenOnce(ctx, fn)
		if ctx.Err() != nil {
			return nil
		}
		if attempt == 1 || attempt%30 == 0 {
			n.log.Warn("listening for notifications failed; reconnecting", "channel", n.name, "err", err, "attempts", attempt)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
		if err == nil {
			backoff, attempt = 100*time.Millisecond, 0
		}
	}
}

// listenOnce listens on one connection until it fails or ctx ends.
func (n *Notifier) listenOnce(ctx context.Context, fn func(payload []byte)) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := n.db.Reader().Conn(cctx)
	if err != nil {
		cancel()
		return fmt.Errorf("take a connection: %w", err)
	}
	defer discard(conn)
	if err := prepareSession(cctx, conn); err != nil {
		cancel()
		return err
	}
	channel, err := n.channelName(cctx, conn.QueryRowContext)
	if err == nil {
		_, err = conn.ExecContext(cctx, "LISTEN "+pgx.Identifier{channel}.Sanitize())
	}
	cancel()
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("listen: driver connection %T is not pgx", dc)
		}
		for {
			note, err := c.Conn().WaitForNotification(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return driver.ErrBadConn
				}
				return fmt.Errorf("wait for a notification: %w", err)
			}
			if note.Channel == channel {
				fn([]byte(note.Payload))
			}
		}
	})
}
