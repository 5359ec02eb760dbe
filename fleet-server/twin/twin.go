// Package twin keeps each device's desired configuration and compares it
// with what the device reports.
//
// Configuration is a JSON object. A group has one; a device may have an
// override. A device's desired document is its group's merged with its
// override: objects merge key by key, recursively; any other value in the
// override replaces the group's; a null in the override removes the key.
// Whenever a device's merged document changes, its version rises by one and
// the document is published retained on the device's twin topic as a
// protocol.TwinDesired. The embedded broker forgets retained messages when
// the server restarts, so Run publishes every device's document again at
// start (in pages), and later any that a failed publish left behind.
//
// The device reports what it applied (protocol.TwinReported, stored by the
// ingest); View compares the two.
package twin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// Broker publishes to devices.
type Broker interface {
	Publish(topic string, payload []byte, retained bool) error
}

// ErrInvalid wraps the reason a configuration was refused: not a JSON
// object, nested too deeply, or too large for the wire.
var ErrInvalid = errors.New("invalid configuration")

// maxDepth bounds the nesting of a configuration, within the wire's bound
// on nested CBOR items (with room for the envelope).
const maxDepth = 12

// Options are the optional settings of the Service.
type Options struct {
	Logger *slog.Logger
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
	// RetryEvery is how often documents whose publish failed are published
	// again; default 30 s.
	RetryEvery time.Duration
	// PageSize bounds the devices handled per database page; default 500.
	PageSize int
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.RetryEvery == 0 {
		o.RetryEvery = 30 * time.Second
	}
	if o.PageSize == 0 {
		o.PageSize = 500
	}
}

// Validate checks the options after defaults are filled in.
func (o *Options) Validate() error {
	if o.RetryEvery <= 0 || o.PageSize < 1 {
		return errors.New("twin retry interval and page size must be positive")
	}
	return nil
}

// Service keeps desired configurations and publishes them.
type Service struct {
	db        *store.DB
	broker    Broker
	opts      Options
	log       *slog.Logger
	connected chan string
	seq       atomic.Uint64
	// pub serialises reading the latest document and publishing it, so
	// that an older version never overwrites a newer retained one.
	pub sync.Mutex
}

// New returns a Service over db and b. Run publishes at start and retries.
func New(db *store.DB, b Broker, opts Options) (*Service, error) {
	opts.defaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Service{db: db, broker: b, opts: opts, log: opts.Logger, connected: make(chan string, 4096)}, nil
}

// SetGroup replaces a group's desired configuration, and updates and
// publishes the documents of its devices that change. It returns the
// group's new configuration version. Errors: ErrInvalid,
// store.ErrNotFound for an unknown group; a failure to publish is logged
// and retried by Run, not returned.
func (s *Service) SetGroup(ctx context.Context, group string, config map[string]any) (uint64, error) {
	b, err := canonical(config)
	if err != nil {
		return 0, err
	}
	version, err := s.db.PutTwinGroup(ctx, group, b, s.opts.Clock().UnixMilli())
	if err != nil {
		return 0, err
	}
	var errs []error
	after := ""
	for {
		devs, err := s.db.Devices(ctx, store.DeviceFilter{GroupID: group, After: after, Limit: s.opts.PageSize})
		if err != nil {
			return version, err
		}
		for _, d := range devs {
			if d.RevokedAt != 0 {
				continue
			}
			if _, err := s.Refresh(ctx, d.ID); err != nil {
				errs = append(errs, err)
			}
		}
		if len(devs) < s.opts.PageSize {
			break
		}
		after = devs[len(devs)-1].ID
	}
	return version, errors.Join(errs...)
}

// SetDevice sets a device's override (nil removes it) and updates and
// publishes its document if it changes. Errors: ErrInvalid,
// store.ErrNotFound for an unknown device.
func (s *Service) SetDevice(ctx context.Context, device string, override map[string]any) error {
	var b []byte
	if override != nil {
		var err error
		if b, err = canonical(override); err != nil {
			return err
		}
	}
	if err := s.db.PutTwinOverride(ctx, device, b, s.opts.Clock().UnixMilli()); err != nil {
		return err
	}
	_, err := s.Refresh(ctx, device)
	return err
}

// Refresh recomputes a device's desired document from its group and
// override; if it changed, it stores it as the next version and publishes
// it. Call it when a device joins or changes group. A device whose group
// has no configuration and that has no override gets no document.
func (s *Service) Refresh(ctx context.Context, device string) (store.TwinDesired, error) {
	for range 5 {
		in, err := s.db.TwinInputs(ctx, device)
		if err != nil {
			return store.TwinDesired{}, err
		}
		if in.GroupConfig == nil && in.Override == nil && in.Desired.Version == 0 {
			return in.Desired, nil
		}
		group, err := parse(in.GroupConfig)
		if err != nil {
			return store.TwinDesired{}, fmt.Errorf("configuration of group %s: %w", in.Group, err)
		}
		over, err := parse(in.Override)
		if err != nil {
			return store.TwinDesired{}, fmt.Errorf("configuration override of %s: %w", device, err)
		}
		doc, err := canonical(Merge(group, over))
		if err != nil {
			return store.TwinDesired{}, err
		}
		if in.Desired.Version > 0 && bytes.Equal(doc, in.Desired.Config) {
			if in.Desired.Published < in.Desired.Version {
				return in.Desired, s.publish(ctx, device)
			}
			return in.Desired, nil
		}
		ok, err := s.db.PutTwinDesired(ctx, device, in.Desired.Version, doc, s.opts.Clock().UnixMilli())
		if err != nil {
			return store.TwinDesired{}, err
		}
		if !ok {
			continue // changed meanwhile: compute again
		}
		if err := s.publish(ctx, device); err != nil {
			s.log.Warn("desired configuration stored, but publishing it failed; retrying", "device", device, "err", err)
		}
		return s.db.TwinDesired(ctx, device)
	}
	return store.TwinDesired{}, fmt.Errorf("desired configuration of %s keeps changing; try again", device)
}

// publish hands the device's latest document to the broker, retained.
func (s *Service) publish(ctx context.Context, device string) error {
	s.pub.Lock()
	defer s.pub.Unlock()
	d, err := s.db.TwinDesired(ctx, device)
	if err != nil {
		return err
	}
	return s.publishDoc(ctx, d)
}

func (s *Service) publishDoc(ctx context.Context, d store.TwinDesired) error {
	cfg, err := parse(d.Config)
	if err != nil {
		return fmt.Errorf("desired configuration of %s: %w", d.Device, err)
	}
	topic, err := protocol.TopicFor(d.Device, protocol.TypeTwinDesired)
	if err != nil {
		return err
	}
	b, err := protocol.Encode(protocol.NewEnvelope(d.Device, s.seq.Add(1), s.opts.Clock(),
		&protocol.TwinDesired{Version: d.Version, Config: cfg}))
	if err != nil {
		return fmt.Errorf("encode desired configuration of %s: %w", d.Device, err)
	}
	if err := s.broker.Publish(topic, b, true); err != nil {
		return fmt.Errorf("publish desired configuration of %s: %w", d.Device, err)
	}
	return s.db.MarkTwinPublished(ctx, d.Device, d.Version)
}

// Connected tells the service that a device started a session, so that its
// document is brought up to date (a device enrolled since its group was
// configured gets its first). It never blocks.
func (s *Service) Connected(device string) {
	select {
	case s.connected <- device:
	default:
	}
}

// Run publishes every device's document once (the broker may have lost
// its retained messages), then refreshes connecting devices and publishes
// documents that are behind, until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	if err := s.RepublishAll(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("publishing desired configurations at start failed; retrying later", "err", err)
	}
	tick := time.NewTicker(s.opts.RetryEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case device := <-s.connected:
			if _, err := s.Refresh(ctx, device); err != nil && ctx.Err() == nil {
				s.log.Warn("updating desired configuration failed", "device", device, "err", err)
			}
		case <-tick.C:
			if err := s.publishPages(ctx, true); err != nil && ctx.Err() == nil {
				s.log.Warn("publishing desired configurations failed; retrying", "err", err)
			}
		}
	}
}

// RepublishAll publishes every device's document, in pages.
func (s *Service) RepublishAll(ctx context.Context) error {
	return s.publishPages(ctx, false)
}

func (s *Service) publishPages(ctx context.Context, unpublished bool) error {
	var errs []error
	after := ""
	n := 0
	for {
		page, err := s.db.TwinDesiredPage(ctx, after, s.opts.PageSize, unpublished)
		if err != nil {
			return err
		}
		for _, d := range page {
			s.pub.Lock()
			err := s.publishDoc(ctx, d)
			s.pub.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else {
				n++
			}
		}
		if len(page) < s.opts.PageSize {
			break
		}
		after = page[len(page)-1].Device
	}
	if n > 0 {
		s.log.Info("published desired configurations", "devices", n)
	}
	return errors.Join(errs...)
}

// View is a device's configuration: desired, reported, and the difference.
type View struct {
	Device string
	Group  string
	// GroupConfig and Override are the parts; Desired is the merged
	// document (nil when the device has none yet).
	GroupConfig map[string]any
	Override    map[string]any
	Desired     map[string]any
	Version     uint64
	Published   uint64
	UpdatedAt   int64
	// Reported is nil until the device reports.
	Reported *Reported
	Diff     Diff
}

// Reported is what the device last reported.
type Reported struct {
	Version  uint64
	Rejected uint64
	Reason   string
	// Config is nil when the device does not report its configuration.
	Config map[string]any
	At     int64
}

// Diff says how the device differs from its desired configuration.
type Diff struct {
	DesiredVersion uint64
	AppliedVersion uint64
	// InSync: the device applied the desired version, and its reported
	// configuration (if it reports one) matches.
	InSync bool
	// Rejected: the device refused the desired version, for Reason.
	Rejected bool
	Reason   string
	// Keys lists the keys (dotted paths) whose reported value differs from
	// the desired one, when the device reports its configuration.
	Keys []string
}

// Device returns a device's configuration view (store.ErrNotFound for an
// unknown device).
func (s *Service) Device(ctx context.Context, device string) (View, error) {
	in, err := s.db.TwinInputs(ctx, device)
	if err != nil {
		return View{}, err
	}
	v := View{Device: device, Group: in.Group, Version: in.Desired.Version, Published: in.Desired.Published,
		UpdatedAt: in.Desired.UpdatedAt}
	for _, p := range []struct {
		b   []byte
		dst *map[string]any
	}{{in.GroupConfig, &v.GroupConfig}, {in.Override, &v.Override}, {in.Desired.Config, &v.Desired}} {
		if p.b != nil {
			if *p.dst, err = parse(p.b); err != nil {
				return View{}, err
			}
		}
	}
	r, err := s.db.TwinReported(ctx, device)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return View{}, err
	default:
		v.Reported = &Reported{Version: r.Version, Rejected: r.Rejected, Reason: r.Reason, At: r.ReportedAt}
		if r.Config != nil {
			if v.Reported.Config, err = parse(r.Config); err != nil {
				return View{}, fmt.Errorf("reported configuration of %s: %w", device, err)
			}
		}
	}
	v.Diff = Compare(v.Version, v.Desired, v.Reported)
	return v, nil
}

// Group returns a group's configuration and its version (store.ErrNotFound
// when the group has none).
func (s *Service) Group(ctx context.Context, group string) (map[string]any, uint64, error) {
	g, err := s.db.TwinGroup(ctx, group)
	if err != nil {
		return nil, 0, err
	}
	cfg, err := parse(g.Config)
	return cfg, g.Version, err
}

// Compare computes the difference between a desired document of version
// and what the device reported (nil: nothing yet).
func Compare(version uint64, desired map[string]any, r *Reported) Diff {
	d := Diff{DesiredVersion: version}
	if r == nil {
		return d
	}
	d.AppliedVersion = r.Version
	if r.Rejected != 0 && r.Rejected == version {
		d.Rejected, d.Reason = true, r.Reason
	}
	if r.Config != nil {
		want, got := map[string]string{}, map[string]string{}
		flatten("", normalize(desired), want)
		flatten("", normalize(r.Config), got)
		for k, v := range want {
			if g, ok := got[k]; !ok || g != v {
				d.Keys = append(d.Keys, k)
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				d.Keys = append(d.Keys, k)
			}
		}
		sort.Strings(d.Keys)
	}
	d.InSync = version == r.Version && !d.Rejected && len(d.Keys) == 0
	return d
}

// flatten maps each leaf of v to its JSON text under its dotted path.
func flatten(prefix string, v any, out map[string]string) {
	if m, ok := v.(map[string]any); ok && (len(m) > 0 || prefix == "") {
		for k, x := range m {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			flatten(p, x, out)
		}
		return
	}
	b, _ := json.Marshal(v)
	out[prefix] = string(b)
}

// Merge returns group with over merged in: objects key by key, recursively;
// other values replace; a nil value removes the key. Neither input changes.
func Merge(group, over map[string]any) map[string]any {
	out := make(map[string]any, len(group)+len(over))
	for k, v := range group {
		out[k] = v
	}
	for k, v := range over {
		switch ov := v.(type) {
		case nil:
			delete(out, k)
		case map[string]any:
			if gv, ok := out[k].(map[string]any); ok {
				out[k] = Merge(gv, ov)
			} else {
				out[k] = Merge(nil, ov)
			}
		default:
			out[k] = v
		}
	}
	return out
}

// canonical checks a configuration and returns its canonical JSON: keys
// sorted, integral numbers as integers.
func canonical(cfg map[string]any) ([]byte, error) {
	n := normalize(cfg)
	if n == nil {
		n = map[string]any{}
	}
	if depth(n) > maxDepth {
		return nil, fmt.Errorf("%w: nested deeper than %d levels", ErrInvalid, maxDepth)
	}
	b, err := json.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	// It must fit the wire with room for the envelope.
	probe := &protocol.TwinDesired{Version: math.MaxUint64, Config: n.(map[string]any)}
	if _, err := protocol.Encode(protocol.NewEnvelope("probe", 1, time.UnixMilli(1), probe)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return b, nil
}

// normalize returns v as JSON would carry it, with integral numbers as
// int64: what a JSON body from the API and a CBOR report from a device
// both become, so that they compare equal.
func normalize(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return v
	}
	return numbers(out)
}

func numbers(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = numbers(x)
		}
		return v
	case []any:
		for i, x := range v {
			v[i] = numbers(x)
		}
		return v
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	}
	return v
}

func depth(v any) int {
	d := 0
	switch v := v.(type) {
	case map[string]any:
		for _, x := range v {
			d = max(d, depth(x))
		}
		return d + 1
	case []any:
		for _, x := range v {
			d = max(d, depth(x))
		}
		return d + 1
	}
	return 0
}

// parse reads a stored configuration; nil for none.
func parse(b []byte) (map[string]any, error) {
	if b == nil {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		m = map[string]any{}
	}
	return numbers(m).(map[string]any), nil
}
