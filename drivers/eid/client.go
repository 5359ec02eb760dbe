package eid

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kogge-fleet/kogge/drivers"
)

// Options tune a [Client]. The zero value means the defaults.
type Options struct {
	// APILevel is set right after connecting (2, the level this package
	// speaks; the app must offer it).
	APILevel int
	// ReplyTimeout bounds the connection handshake and every command that
	// the app answers at once (5 s).
	ReplyTimeout time.Duration
	// WorkflowTimeout bounds a workflow from its start to its outcome
	// (5 min). When it passes, the client cancels the workflow; the outcome
	// then carries drivers.ErrTimeout.
	WorkflowTimeout time.Duration
	// Logger receives the client's log lines (slog.Default()).
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.APILevel == 0 {
		o.APILevel = 2
	}
	if o.ReplyTimeout == 0 {
		o.ReplyTimeout = 5 * time.Second
	}
	if o.WorkflowTimeout == 0 {
		o.WorkflowTimeout = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validate checks the options after defaults are filled in.
func (o Options) Validate() error {
	if o.APILevel < 2 {
		return fmt.Errorf("api level %d: this client speaks level 2 and up", o.APILevel)
	}
	if o.ReplyTimeout <= 0 || o.WorkflowTimeout <= 0 {
		return fmt.Errorf("reply timeout %v and workflow timeout %v: must be positive", o.ReplyTimeout, o.WorkflowTimeout)
	}
	return nil
}

// transport carries SDK messages: a WebSocket, or memory for the fake.
type transport interface {
	// ReadMessage blocks for the next message; it fails once closed.
	ReadMessage() ([]byte, error)
	WriteMessage(ctx context.Context, data []byte) error
	Close() error
}

// Client speaks the AusweisApp SDK over one connection. It is safe for
// concurrent use; at most one workflow runs at a time.
type Client struct {
	opts Options
	log  *slog.Logger
	t    transport
	wg   sync.WaitGroup
	done chan struct{} // closed by Close
	dead chan struct{} // closed when the read loop ends

	closeOnce sync.Once
	reqMu     sync.Mutex // one request and its answer at a time

	mu       sync.Mutex
	pending  *pending
	wf       *Workflow
	readers  map[string]Reader
	deadErr  error  // why the read loop ended
	internal string // last INTERNAL_ERROR, cleared by a good outcome
}

// pending is a command waiting for its answer.
type pending struct {
	cmd   string
	want  []string
	match func(Message) bool
	reply chan Message
	// onReply runs in the read loop, with the client's lock held, when the
	// answer arrives; workflows install themselves here so that no later
	// message passes them by.
	onReply func(Message)
}

func (p *pending) accepts(m Message) bool {
	switch m.Type {
	case MsgBadState, MsgUnknownCommand:
		return m.Error == p.cmd
	case MsgInvalid:
		return true
	}
	return slices.Contains(p.want, m.Type) && (p.match == nil || p.match(m))
}

// Dial connects to the AusweisApp at url (DefaultURL if empty) and sets the
// API level. A second client gets ErrBusy; an app that is not running gives
// an error wrapping drivers.ErrDisconnected.
func Dial(ctx context.Context, url string, opts Options) (*Client, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if url == "" {
		url = DefaultURL
	}
	dctx, cancel := context.WithTimeout(ctx, opts.ReplyTimeout)
	defer cancel()
	d := websocket.Dialer{HandshakeTimeout: opts.ReplyTimeout}
	conn, resp, err := d.DialContext(dctx, url, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		switch {
		case resp != nil && resp.StatusCode == http.StatusTooManyRequests:
			return nil, fmt.Errorf("connect to AusweisApp at %s: %w (it serves one client at a time)", url, ErrBusy)
		case errors.Is(err, syscall.ECONNREFUSED):
			return nil, fmt.Errorf("connect to AusweisApp at %s: %w: nothing listens there; start the AusweisApp", url, drivers.ErrDisconnected)
		case errors.Is(err, context.DeadlineExceeded):
			return nil, fmt.Errorf("connect to AusweisApp at %s: %w", url, drivers.ErrTimeout)
		case resp != nil:
			return nil, fmt.Errorf("connect to AusweisApp at %s: HTTP %s", url, resp.Status)
		}
		return nil, fmt.Errorf("connect to AusweisApp at %s: %w", url, err)
	}
	conn.SetReadLimit(MaxMessageSize)
	c := newClient(&wsTransport{conn: conn, timeout: opts.ReplyTimeout}, opts)
	if err := c.setAPILevel(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func newClient(t transport, opts Options) *Client {
	c := &Client{
		opts: opts, log: opts.Logger.With("driver", "eid"), t: t,
		done: make(chan struct{}), dead: make(chan struct{}), readers: map[string]Reader{},
	}
	c.wg.Add(1)
	go c.readLoop()
	return c
}

func (c *Client) setAPILevel(ctx context.Context) error {
	m, err := c.request(ctx, Command{Cmd: CmdSetAPILevel, Level: c.opts.APILevel}, []string{MsgAPILevel}, nil, nil)
	if err != nil {
		return fmt.Errorf("set AusweisApp API level %d: %w", c.opts.APILevel, err)
	}
	if m.Error != "" || m.APILevel == nil || m.APILevel.Current != c.opts.APILevel {
		var avail []int
		if m.APILevel != nil {
			avail = m.APILevel.Available
		}
		return fmt.Errorf("set AusweisApp API level %d: refused (%s; it offers %v): update the AusweisApp", c.opts.APILevel, m.Error, avail)
	}
	return nil
}

// Close ends the connection and waits for the client's goroutines. A
// running workflow ends with drivers.ErrDisconnected.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.done)
		err = c.t.Close()
		c.wg.Wait()
	})
	return err
}

// Info asks the app for its version.
func (c *Client) Info(ctx context.Context) (Info, error) {
	m, err := c.request(ctx, Command{Cmd: CmdGetInfo}, []string{MsgInfo}, nil, nil)
	if err != nil {
		return Info{}, fmt.Errorf("get AusweisApp info: %w", err)
	}
	return *m.Info, nil
}

// APILevel asks the app for the API levels it offers and the current one.
func (c *Client) APILevel(ctx context.Context) (APILevel, error) {
	m, err := c.request(ctx, Command{Cmd: CmdGetAPILevel}, []string{MsgAPILevel}, nil, nil)
	if err != nil {
		return APILevel{}, fmt.Errorf("get AusweisApp API level: %w", err)
	}
	return *m.APILevel, nil
}

// Readers lists the card readers the app knows.
func (c *Client) Readers(ctx context.Context) ([]Reader, error) {
	m, err := c.request(ctx, Command{Cmd: CmdGetReaderList}, []string{MsgReaderList}, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("list eID card readers: %w", err)
	}
	return m.Readers, nil
}

// Reader asks for one reader by name; an unknown reader comes back with
// Attached false.
func (c *Client) Reader(ctx context.Context, name string) (Reader, error) {
	m, err := c.request(ctx, Command{Cmd: CmdGetReader, Name: name}, []string{MsgReader},
		func(m Message) bool { return m.Reader.Name == name }, nil)
	if err != nil {
		return Reader{}, fmt.Errorf("get eID card reader %q: %w", name, err)
	}
	return *m.Reader, nil
}

// Auth starts an authentication for the service behind tcTokenURL.
func (c *Client) Auth(ctx context.Context, tcTokenURL string) (*Workflow, error) {
	if tcTokenURL == "" {
		return nil, errors.New("start eID authentication: the service's tcTokenURL is empty")
	}
	return c.start(ctx, Command{Cmd: CmdRunAuth, TCTokenURL: tcTokenURL}, MsgAuth)
}

// ChangePIN starts a PIN change.
func (c *Client) ChangePIN(ctx context.Context) (*Workflow, error) {
	return c.start(ctx, Command{Cmd: CmdRunChangePIN}, MsgChangePIN)
}

func (c *Client) start(ctx context.Context, cmd Command, kind string) (*Workflow, error) {
	what := "start eID authentication"
	if kind == MsgChangePIN {
		what = "start PIN change"
	}
	c.mu.Lock()
	busy := c.wf != nil
	c.mu.Unlock()
	if busy {
		return nil, fmt.Errorf("%s: %w: another workflow is running", what, ErrBusy)
	}
	w := newWorkflow(c, kind)
	install := func(m Message) {
		if m.Type != kind || m.Error != "" {
			return
		}
		c.wf = w
		c.wg.Add(1)
		go w.pump()
		if m.Final() {
			c.finishLocked(w, m, nil)
		}
	}
	m, err := c.request(ctx, cmd, []string{kind}, nil, install)
	if errors.Is(err, ErrBadState) {
		return nil, fmt.Errorf("%s: %w: the AusweisApp runs another workflow", what, ErrBusy)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if m.Error != "" {
		return nil, fmt.Errorf("%s: the AusweisApp refused it: %s", what, m.Error)
	}
	return w, nil
}

// Status is the peripheral's state: ok with an attached reader, degraded
// without one, error after an INTERNAL_ERROR, missing once the connection
// is lost.
func (c *Client) Status() drivers.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deadErr != nil {
		return drivers.Status{State: drivers.StateMissing, Reason: "connection to the AusweisApp lost: " + c.deadErr.Error() + "; restart the AusweisApp"}
	}
	if c.internal != "" {
		return drivers.Status{State: drivers.StateError, Reason: "the AusweisApp reported an internal error: " + c.internal}
	}
	for _, r := range c.readers {
		if r.Attached {
			return drivers.Status{State: drivers.StateOK}
		}
	}
	return drivers.Status{State: drivers.StateDegraded, Reason: "no card reader attached to the AusweisApp: plug in the reader"}
}

// request sends cmd and waits for an answer of one of the types in want.
func (c *Client) request(ctx context.Context, cmd Command, want []string, match func(Message) bool, onReply func(Message)) (Message, error) {
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	p := &pending{cmd: cmd.Cmd, want: want, match: match, reply: make(chan Message, 1), onReply: onReply}
	c.mu.Lock()
	if c.deadErr != nil {
		err := c.deadErr
		c.mu.Unlock()
		return Message{}, fmt.Errorf("%w: %v", drivers.ErrDisconnected, err)
	}
	c.pending = p
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.pending == p {
			c.pending = nil
		}
		c.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, c.opts.ReplyTimeout)
	defer cancel()
	if err := c.send(ctx, cmd); err != nil {
		return Message{}, err
	}
	select {
	case m := <-p.reply:
		switch m.Type {
		case MsgBadState:
			return m, fmt.Errorf("%s: %w", cmd.Cmd, ErrBadState)
		case MsgUnknownCommand:
			return m, fmt.Errorf("the AusweisApp does not know the command %s: update it", cmd.Cmd)
		case MsgInvalid:
			return m, fmt.Errorf("the AusweisApp could not read %s: %s", cmd.Cmd, m.Error)
		}
		return m, nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return Message{}, fmt.Errorf("no answer to %s: %w", cmd.Cmd, drivers.ErrTimeout)
		}
		return Message{}, ctx.Err()
	case <-c.dead:
		return Message{}, fmt.Errorf("no answer to %s: %w", cmd.Cmd, drivers.ErrDisconnected)
	}
}

// send writes one command.
func (c *Client) send(ctx context.Context, cmd Command) error {
	b, err := cmd.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encode %s: %w", cmd.Cmd, err)
	}
	select {
	case <-c.dead:
		return fmt.Errorf("send %s: %w", cmd.Cmd, drivers.ErrDisconnected)
	default:
	}
	if err := c.t.WriteMessage(ctx, b); err != nil {
		return fmt.Errorf("send %s: %w: %v", cmd.Cmd, drivers.ErrDisconnected, err)
	}
	return nil
}

func (c *Client) readLoop() {
	defer c.wg.Done()
	var err error
	for {
		var data []byte
		data, err = c.t.ReadMessage()
		if err != nil {
			break
		}
		m, derr := DecodeMessage(data)
		if derr != nil {
			c.log.Warn("eid: dropped a message the client cannot read", "err", derr)
			continue
		}
		c.dispatch(m)
	}
	c.mu.Lock()
	select {
	case <-c.done:
		c.deadErr = errors.New("the client was closed")
	default:
		c.deadErr = err
		c.log.Warn("eid: connection to the AusweisApp lost", "err", err)
	}
	if w := c.wf; w != nil {
		c.finishLocked(w, Message{}, fmt.Errorf("workflow aborted: %w: %v", drivers.ErrDisconnected, c.deadErr))
	}
	close(c.dead)
	c.mu.Unlock()
}

func (c *Client) dispatch(m Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m.Type == MsgReader && m.Reader != nil {
		c.readers[m.Reader.Name] = *m.Reader
	}
	if m.Type == MsgReaderList {
		clear(c.readers)
		for _, r := range m.Readers {
			c.readers[r.Name] = r
		}
	}
	if p := c.pending; p != nil && p.accepts(m) {
		c.pending = nil
		if p.onReply != nil {
			p.onReply(m)
		}
		p.reply <- m
		// A READER answer may be the app's news of a card, too: the
		// workflow hears it either way.
		if w := c.wf; w != nil && m.Type == MsgReader {
			w.handle(m)
		}
		return
	}
	if m.Type == MsgInternalError {
		c.internal = m.Error
		c.log.Error("eid: the AusweisApp reported an internal error", "error", m.Error)
	}
	w := c.wf
	if w == nil {
		if m.Type != MsgReader && m.Type != MsgInternalError {
			c.log.Debug("eid: message outside a workflow", "msg", m.Type, "error", m.Error)
		}
		return
	}
	if m.Final() {
		c.finishLocked(w, m, nil)
		return
	}
	w.handle(m)
}

// finishLocked ends w with its final message m or with err.
func (c *Client) finishLocked(w *Workflow, m Message, err error) {
	if c.wf == w {
		c.wf = nil
	}
	o := Outcome{Workflow: w.kind}
	switch {
	case err != nil:
	case m.Type == MsgAuth:
		o.Result, o.URL = m.Result, m.URL
		o.OK = m.Result.OK()
		o.Reason = m.Result.Reason
	case m.Type == MsgChangePIN:
		o.OK = *m.Success
		o.Reason = m.Reason
	}
	if o.OK {
		c.internal = ""
	}
	w.finish(o, err)
}

// wsTransport is the WebSocket to the app.
type wsTransport struct {
	conn    *websocket.Conn
	timeout time.Duration
	wmu     sync.Mutex
}

func (t *wsTransport) ReadMessage() ([]byte, error) {
	for {
		typ, data, err := t.conn.ReadMessage()
		if err != nil {
			return nil, err
		}
		if typ == websocket.TextMessage {
			return data, nil
		}
	}
}

func (t *wsTransport) WriteMessage(ctx context.Context, data []byte) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	deadline := time.Now().Add(t.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := t.conn.SetWriteDeadline(deadline); err != nil {
		return err
	}
	return t.conn.WriteMessage(websocket.TextMessage, data)
}

func (t *wsTransport) Close() error {
	t.wmu.Lock()
	// A polite close frame; the app may be gone already.
	_ = t.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	t.wmu.Unlock()
	return t.conn.Close()
}
