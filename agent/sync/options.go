package sync

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kogge-fleet/kogge/protocol"
)

// Options tune the engine. The zero value of each field means its default.
type Options struct {
	// Window is the number of records in flight without an ack (64).
	Window int
	// ChunkSize is the data size of one BlobChunk (protocol.DefaultChunkSize).
	ChunkSize int
	// ChunkBytesInFlight bounds the chunk data sent but not acknowledged
	// (8 chunks).
	ChunkBytesInFlight int
	// Uploads bounds the blobs uploaded at the same time (4).
	Uploads int
	// AckTimeout is how long the engine waits for an ack before it sends
	// again (15 s). It doubles with every further timeout, up to MaxBackoff,
	// with ±25 % jitter, and falls back once an ack arrives.
	AckTimeout time.Duration
	// MaxBackoff caps the retransmission timeout (2 min).
	MaxBackoff time.Duration
	// HelloTimeout is how long the engine waits for the SyncState before it
	// says hello again (10 s), backing off like AckTimeout.
	HelloTimeout time.Duration
	// OpTimeout bounds every store call and publish (10 s).
	OpTimeout time.Duration
	// LogEvery is the least time between two log lines about the same kind
	// of bad downlink message (1 min).
	LogEvery time.Duration
	// Logger receives the engine's log lines (slog.Default()).
	Logger *slog.Logger
	// Now is the clock (time.Now).
	Now func() time.Time
	// OnMessage receives the checked downlink messages the engine does not
	// handle itself: TwinDesired, Command and RecordStatus. It is called on
	// the engine's goroutine and must not block.
	OnMessage func(*protocol.Envelope)
	// OnEvent receives what happened to records and sessions. It is called
	// on the engine's goroutine and must not block.
	OnEvent func(Event)
}

// Validate checks the options after defaults are filled in.
func (o Options) Validate() error {
	var errs []error
	if o.Window < 1 || o.Window > protocol.MaxAckItems {
		errs = append(errs, fmt.Errorf("window %d: must be 1 to %d", o.Window, protocol.MaxAckItems))
	}
	if o.ChunkSize < 1 || o.ChunkSize > protocol.MaxChunkData {
		errs = append(errs, fmt.Errorf("chunk size %d: must be 1 to %d bytes", o.ChunkSize, protocol.MaxChunkData))
	}
	if o.ChunkBytesInFlight < o.ChunkSize {
		errs = append(errs, fmt.Errorf("chunk bytes in flight %d: must hold at least one chunk of %d", o.ChunkBytesInFlight, o.ChunkSize))
	}
	if o.Uploads < 1 {
		errs = append(errs, fmt.Errorf("uploads %d: must be 1 or more", o.Uploads))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"ack timeout", o.AckTimeout}, {"max backoff", o.MaxBackoff}, {"hello timeout", o.HelloTimeout}, {"op timeout", o.OpTimeout}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s %v: must be positive", d.name, d.v))
		}
	}
	if o.MaxBackoff < o.AckTimeout || o.MaxBackoff < o.HelloTimeout {
		errs = append(errs, fmt.Errorf("max backoff %v: must not be below the ack and hello timeouts", o.MaxBackoff))
	}
	return errors.Join(errs...)
}

func (o Options) withDefaults() Options {
	if o.Window == 0 {
		o.Window = 64
	}
	if o.ChunkSize == 0 {
		o.ChunkSize = protocol.DefaultChunkSize
	}
	if o.ChunkBytesInFlight == 0 {
		o.ChunkBytesInFlight = 8 * o.ChunkSize
	}
	if o.Uploads == 0 {
		o.Uploads = 4
	}
	if o.AckTimeout == 0 {
		o.AckTimeout = 15 * time.Second
	}
	if o.HelloTimeout == 0 {
		o.HelloTimeout = 10 * time.Second
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = max(2*time.Minute, o.AckTimeout, o.HelloTimeout)
	}
	if o.OpTimeout == 0 {
		o.OpTimeout = 10 * time.Second
	}
	if o.LogEvery == 0 {
		o.LogEvery = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}
