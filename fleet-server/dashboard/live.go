package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/kogge-fleet/kogge/fleet-server/store"
)

// Live updates: the watcher polls the store for presence changes and the
// results of commands sent from the dashboard, the alert evaluator reports
// alerts, and the hub fans each change out to every open page over a
// websocket. Polling the store rather than listening inside the process
// shows the changes that other replicas make too.

// liveMessage is one update for the pages (JSON over the websocket).
type liveMessage struct {
	Type    string         `json:"type"` // presence, counts, alert, command
	Device  string         `json:"device,omitempty"`
	ID      string         `json:"id,omitempty"`
	State   string         `json:"state,omitempty"`
	Reason  string         `json:"reason,omitempty"`
	Rule    string         `json:"rule,omitempty"`
	Subject string         `json:"subject,omitempty"`
	Message string         `json:"message,omitempty"`
	At      int64          `json:"at,omitempty"`
	Counts  map[string]int `json:"counts,omitempty"`
}

// hub fans messages out to the connected pages. Each client has a bounded
// buffer; a client that falls behind is dropped (its page reconnects and
// reloads) so that one slow browser never holds up the others.
type hub struct {
	buf int
	log *slog.Logger

	mu      sync.Mutex
	clients map[*client]struct{}
	closed  bool
	// conns counts the connections being served, for Run to wait on.
	conns sync.WaitGroup
}

type client struct {
	send chan []byte
	done chan struct{}
	once sync.Once
}

func (c *client) stop() { c.once.Do(func() { close(c.done) }) }

func newHub(buf int, log *slog.Logger) *hub {
	return &hub{buf: buf, log: log, clients: map[*client]struct{}{}}
}

// add registers a client; false once the hub is closed.
func (h *hub) add() (*client, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, false
	}
	c := &client{send: make(chan []byte, h.buf), done: make(chan struct{})}
	h.clients[c] = struct{}{}
	h.conns.Add(1)
	return c, true
}

func (h *hub) remove(c *client) {
	h.mu.Lock()
	_, ok := h.clients[c]
	delete(h.clients, c)
	h.mu.Unlock()
	c.stop()
	if ok {
		h.conns.Done()
	}
}

// size returns the number of clients.
func (h *hub) size() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

func (h *hub) broadcast(m liveMessage) {
	b, err := json.Marshal(m)
	if err != nil {
		h.log.Error("encoding a live update failed", "err", err)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		select {
		case c.send <- b:
		default:
			c.stop()
		}
	}
}

// close stops every client and waits until their connections are done.
func (h *hub) close() {
	h.mu.Lock()
	h.closed = true
	for c := range h.clients {
		c.stop()
	}
	h.mu.Unlock()
	h.conns.Wait()
}

const (
	wsWriteWait  = 10 * time.Second
	wsPingEvery  = 25 * time.Second
	wsReadLimit  = 512
	wsCheckEvery = time.Minute
)

// serveWS upgrades to a websocket and sends live updates until the page
// goes, the session ends or the server stops.
func (h *Handler) serveWS(w http.ResponseWriter, r *http.Request, s *session) error {
	up := websocket.Upgrader{
		ReadBufferSize: 512, WriteBufferSize: 4096, HandshakeTimeout: 10 * time.Second,
		CheckOrigin: func(r *http.Request) bool {
			o, err := url.Parse(r.Header.Get("Origin"))
			return err == nil && o.Host == r.Host
		},
	}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return nil // the upgrader has answered
	}
	defer conn.Close()
	c, ok := h.hub.add()
	if !ok {
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server stopping"),
			time.Now().Add(time.Second))
		return nil
	}
	defer h.hub.remove(c)

	// The reader only watches for the close and the pongs.
	var wg sync.WaitGroup
	defer wg.Wait()
	defer conn.Close()
	conn.SetReadLimit(wsReadLimit)
	_ = conn.SetReadDeadline(time.Now().Add(2 * wsPingEvery))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(2 * wsPingEvery)) })
	wg.Go(func() {
		defer c.stop()
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	})

	hello, _ := json.Marshal(liveMessage{Type: "counts", Counts: h.watch.counts()})
	ping := time.NewTicker(wsPingEvery)
	defer ping.Stop()
	check := time.NewTicker(wsCheckEvery)
	defer check.Stop()
	write := func(kind int, b []byte) error {
		_ = conn.SetWriteDeadline(time.Now().Add(wsWriteWait))
		return conn.WriteMessage(kind, b)
	}
	if err := write(websocket.TextMessage, hello); err != nil {
		return nil
	}
	for {
		select {
		case <-c.done:
			_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""),
				time.Now().Add(time.Second))
			return nil
		case b := <-c.send:
			if err := write(websocket.TextMessage, b); err != nil {
				return nil
			}
		case <-ping.C:
			if err := write(websocket.PingMessage, nil); err != nil {
				return nil
			}
		case <-check.C:
			// A session that ended (signed out, expired, user disabled)
			// ends its live updates too.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := h.svc.Users.Session(ctx, s.IDHash, h.opts.Clock().UnixMilli())
			cancel()
			if errors.Is(err, store.ErrNotFound) {
				_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "session ended"),
					time.Now().Add(time.Second))
				return nil
			}
		}
	}
}

// watcher turns store changes into live messages.
type watcher struct {
	h *Handler

	mu     sync.Mutex
	online map[string]bool
	loaded bool
	last   time.Time
	cmds   map[uuid.UUID]trackedCommand
}

type trackedCommand struct {
	device string
	state  string
	since  time.Time
}

// presenceSlack is how far back each poll looks for presence changes: a
// change is written with the time its batch began, which can be a little
// before its commit.
const presenceSlack = time.Minute

func newWatcher(h *Handler) *watcher {
	return &watcher{h: h, online: map[string]bool{}, cmds: map[uuid.UUID]trackedCommand{}}
}

func (w *watcher) run(ctx context.Context) {
	t := time.NewTicker(w.h.opts.PollEvery)
	defer t.Stop()
	for {
		if err := w.poll(ctx); err != nil && ctx.Err() == nil {
			w.h.log.Warn("polling for live updates failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *watcher) poll(ctx context.Context) error {
	now := w.h.opts.Clock()
	var changed []store.Presence
	w.mu.Lock()
	loaded, since := w.loaded, w.last.Add(-presenceSlack)
	w.mu.Unlock()
	if !loaded {
		all := map[string]bool{}
		for after := ""; ; {
			ps, err := w.h.svc.Fleet.Presences(ctx, after, 1000, false)
			if err != nil {
				return err
			}
			for _, p := range ps {
				all[p.Device] = p.Online
			}
			if len(ps) < 1000 {
				break
			}
			after = ps[len(ps)-1].Device
		}
		w.mu.Lock()
		w.online, w.loaded, w.last = all, true, now
		w.mu.Unlock()
		w.h.hub.broadcast(liveMessage{Type: "counts", Counts: w.counts()})
	} else {
		ps, err := w.h.svc.Fleet.PresenceChanges(ctx, since.UnixMilli())
		if err != nil {
			return err
		}
		w.mu.Lock()
		for _, p := range ps {
			if was, ok := w.online[p.Device]; !ok || was != p.Online {
				w.online[p.Device] = p.Online
				changed = append(changed, p)
			}
		}
		w.last = now
		w.mu.Unlock()
	}
	for _, p := range changed {
		state := "offline"
		if p.Online {
			state = "online"
		}
		w.h.hub.broadcast(liveMessage{Type: "presence", Device: p.Device, State: state, Reason: p.Reason, At: p.ChangedAt})
	}
	if len(changed) > 0 {
		w.h.hub.broadcast(liveMessage{Type: "counts", Counts: w.counts()})
	}
	return w.pollCommands(ctx, now)
}

func (w *watcher) pollCommands(ctx context.Context, now time.Time) error {
	w.mu.Lock()
	ids := make(map[uuid.UUID]trackedCommand, len(w.cmds))
	for id, c := range w.cmds {
		ids[id] = c
	}
	w.mu.Unlock()
	for id, tc := range ids {
		c, err := w.h.svc.Commands.Command(ctx, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		state := c.State()
		if errors.Is(err, store.ErrNotFound) {
			state = store.CommandExpired
		}
		w.mu.Lock()
		if state != tc.state {
			tc.state = state
			w.cmds[id] = tc
		}
		finished := state == store.CommandDone || state == store.CommandExpired || now.Sub(tc.since) > time.Hour
		if finished {
			delete(w.cmds, id)
		}
		w.mu.Unlock()
		if state != ids[id].state {
			m := liveMessage{Type: "command", ID: id.String(), Device: tc.device, State: state}
			if c.Result != nil {
				m.Reason = c.Result.Outcome.String()
				m.Message = c.Result.Message
			}
			w.h.hub.broadcast(m)
		}
	}
	return nil
}

// track follows a command until its result arrives.
func (w *watcher) track(c store.Command) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.cmds) >= 1000 {
		return
	}
	w.cmds[c.ID] = trackedCommand{device: c.Device, state: c.State(), since: w.h.opts.Clock()}
}

// counts returns how many devices are online and offline.
func (w *watcher) counts() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	on, off := 0, 0
	for _, o := range w.online {
		if o {
			on++
		} else {
			off++
		}
	}
	return map[string]int{"online": on, "offline": off}
}
