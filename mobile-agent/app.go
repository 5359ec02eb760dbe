package mobileagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/agent/store"
	"github.com/kogge-fleet/kogge/drivers"
	"github.com/kogge-fleet/kogge/drivers/camera"
	"github.com/kogge-fleet/kogge/drivers/gnss"
	"github.com/kogge-fleet/kogge/drivers/printer"
	"github.com/kogge-fleet/kogge/mobile-agent/enforcement"
	"github.com/kogge-fleet/kogge/mobile-agent/roadwork"
	"github.com/kogge-fleet/kogge/mobile-agent/roadwork/photo"
	"github.com/kogge-fleet/kogge/mobile-agent/shift"
	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/protocol/seal"
)

// Default offices of the records: the fine office (OWi procedure) and the
// road-maintenance office, as the fleet simulator names them.
const (
	DefaultNoticeOffice = "ordnungsamt"
	DefaultReportOffice = "strassenbau"
)

// Store value keys of the app's own lists (see Options).
const (
	keyNotices   = "mobile.notices"
	keyPlaces    = "mobile.places"
	keyCatalogue = "mobile.catalogue"
)

// Config is what the handheld is: its identity, its offices, the office
// printed on notices and the officers who may log in.
type Config struct {
	// Device is the device id (from enrollment); Software the app's
	// version.
	Device, Software string
	// NoticePrefix starts the device's notice numbers (1–8 capital letters
	// and digits, unique in the fleet; see enforcement.CheckPrefix).
	NoticePrefix string
	// NoticeOffice receives notices (default DefaultNoticeOffice);
	// ReportOffice damage reports (default DefaultReportOffice). Records
	// are sealed for their keys.
	NoticeOffice, ReportOffice string
	// Issuer is the office as the printed notice names it, with the
	// account warnings are paid to.
	Issuer enforcement.Office
	// Officers may log in with their PINs until the twin's "officers"
	// replace them.
	Officers []shift.Officer
	// PaperColumns is the printer's paper width in characters: 48 (80 mm,
	// the default) or 32 (58 mm).
	PaperColumns int
	// Limits bound positions (accuracy, age) and photos for notices and
	// reports alike.
	Limits roadwork.Limits
	// MaxBackdate is how far the warden may move a notice's observation
	// start before the moment the notice was opened (the vehicle was seen a
	// little earlier); default 10 min. A longer observation needs a record
	// at the first pass, so that the minimum durations of the catalogue
	// cannot be met by typing an earlier time.
	MaxBackdate time.Duration
}

func (c *Config) setDefaults() {
	if c.NoticeOffice == "" {
		c.NoticeOffice = DefaultNoticeOffice
	}
	if c.ReportOffice == "" {
		c.ReportOffice = DefaultReportOffice
	}
	if c.PaperColumns == 0 {
		c.PaperColumns = 48
	}
	if c.Limits.MaxAccuracy == 0 {
		c.Limits.MaxAccuracy = roadwork.DefaultMaxAccuracy
	}
	if c.Limits.MaxFixAge == 0 {
		c.Limits.MaxFixAge = roadwork.DefaultMaxFixAge
	}
	if c.Limits.MaxPhotos == 0 {
		c.Limits.MaxPhotos = roadwork.DefaultMaxPhotos
	}
	if c.MaxBackdate == 0 {
		c.MaxBackdate = 10 * time.Minute
	}
}

// Validate reports a configuration the app cannot work with; defaults are
// filled in first.
func (c Config) Validate() error {
	c.setDefaults()
	var errs []error
	if err := (agent.Config{Device: c.Device, Software: c.Software}).Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := enforcement.CheckPrefix(c.NoticePrefix); err != nil {
		errs = append(errs, fmt.Errorf("notice prefix: %w", err))
	}
	for _, o := range []struct{ what, name string }{{"notice office", c.NoticeOffice}, {"report office", c.ReportOffice}} {
		if len(o.name) > protocol.MaxNameLen {
			errs = append(errs, fmt.Errorf("%s %q: at most %d bytes", o.what, o.name, protocol.MaxNameLen))
		}
	}
	if err := c.Issuer.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("issuer: %w", err))
	}
	if err := shift.CheckOfficers(c.Officers); err != nil {
		errs = append(errs, fmt.Errorf("officers: %w", err))
	}
	if c.PaperColumns != 32 && c.PaperColumns != 48 {
		errs = append(errs, fmt.Errorf("paper columns %d: 48 (80 mm paper) or 32 (58 mm)", c.PaperColumns))
	}
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxBackdate < 0 || c.MaxBackdate > time.Hour {
		errs = append(errs, fmt.Errorf("max backdate %v: 0 to 1h", c.MaxBackdate))
	}
	return errors.Join(errs...)
}

// Deps are the parts the app runs on. Store, Transport and Sequencer are
// required; a handheld without a GNSS receiver, printer or camera works
// without what it offers (addresses are typed, notices are saved but not
// printed, photos come from files).
type Deps struct {
	// Store is the device's store; the app keeps its lists in its values.
	Store *store.Store
	// Transport connects the agent to the broker (agent/mqtt).
	Transport agent.Transport
	// Sequencer numbers the notices (enforcement.FileSequencer).
	Sequencer enforcement.Sequencer
	// GNSS gives positions. If it has a Run(ctx) error method
	// (gnss.Serial), the app's Run runs it.
	GNSS gnss.Receiver
	// Printer prints notices.
	Printer printer.Printer
	// Camera takes photos (TakeNoticePhoto, TakeReportPhoto).
	Camera camera.Camera
}

// Options are the app's optional settings.
type Options struct {
	// Agent are the agent's options: sync tuning, provisioned office keys
	// (Offices: for a device that must seal offline before its twin
	// arrived), the wipe token. Its CheckConfig and ApplyConfig are the
	// app's (they are called after the app's own twin keys are handled).
	Agent agent.Options
	// Logger receives the app's log lines (slog.Default()); the agent's
	// lines go to it too.
	Logger *slog.Logger
	// Clock is the current time (time.Now).
	Clock func() time.Time
	// Location is the office's time zone (Europe/Berlin).
	Location *time.Location
	// Catalogue is the offence catalogue to start with; default the one
	// stored by an earlier twin update, else the embedded one.
	Catalogue *enforcement.Catalogue
	// Faces and Plates find what the public copy of a report photo blurs;
	// default the pigo face detector and the heuristic plate finder.
	Faces  photo.FaceFinder
	Plates photo.PlateFinder
	// Photo tunes photo processing.
	Photo photo.Options
	// PrintTimeout bounds printing one notice (30 s).
	PrintTimeout time.Duration
	// PositionTimeout bounds waiting for a GNSS fix (5 s).
	PositionTimeout time.Duration
	// PeripheralInterval is how often Run checks the peripherals (15 s).
	PeripheralInterval time.Duration
	// OnChange is called, outside the app's locks and on no particular
	// goroutine, when something the screens show changed: a case's
	// status, a peripheral, the shift, the catalogue. It must not block.
	OnChange func()
	// Shift tunes logins and shifts (its Sources, Clock and Location are
	// the app's).
	Shift shift.Options
}

func (o *Options) setDefaults() error {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Location == nil {
		loc, err := time.LoadLocation("Europe/Berlin")
		if err != nil {
			return fmt.Errorf("time zone Europe/Berlin: %w (install tzdata or import time/tzdata in main)", err)
		}
		o.Location = loc
	}
	if o.PrintTimeout == 0 {
		o.PrintTimeout = 30 * time.Second
	}
	if o.PositionTimeout == 0 {
		o.PositionTimeout = 5 * time.Second
	}
	if o.PeripheralInterval == 0 {
		o.PeripheralInterval = 15 * time.Second
	}
	if o.OnChange == nil {
		o.OnChange = func() {}
	}
	if o.Agent.Logger == nil {
		o.Agent.Logger = o.Logger
	}
	return nil
}

// Validate reports options that cannot work.
func (o Options) Validate() error {
	switch {
	case o.PrintTimeout < 0 || o.PositionTimeout < 0:
		return errors.New("options: print and position timeouts must not be negative")
	case o.PeripheralInterval < 0:
		return errors.New("options: the peripheral interval must not be negative")
	}
	return o.Photo.Validate()
}

// App is the handheld app. Its methods are safe for concurrent use.
type App struct {
	cfg  Config
	opts Options
	log  *slog.Logger
	now  func() time.Time
	st   *store.Store
	ag   *agent.Agent
	dev  Deps

	issuer   *enforcement.Issuer
	render   *enforcement.Renderer
	shifts   *shift.Manager
	tracker  *roadwork.Tracker
	reporter *roadwork.Reporter
	notices  *noticeBook
	places   *places
	photos   *photo.Processor

	// Subscribed in New, so that no change after a capture is missed.
	trackerCh, noticeCh     <-chan agent.Status
	stopTracker, stopNotice func()

	mu       sync.Mutex
	notice   *noticeDraft
	report   *reportDraft
	issued   map[string]*issuedNotice // this shift's notices, by number (memory only)
	periph   map[string]drivers.Status
	officers []shift.Officer // from the twin; nil: the provisioned ones
	runOnce  bool
	subs     map[chan struct{}]struct{}
}

// opTimeout bounds a store write the app makes on its own.
const opTimeout = 10 * time.Second

// New builds the app: it opens the lists in the store, creates the agent
// with the app's twin hooks and loads the catalogue. Run runs it.
func New(ctx context.Context, cfg Config, deps Deps, opts Options) (*App, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("mobile app: %w", err)
	}
	if deps.Store == nil || deps.Transport == nil || deps.Sequencer == nil {
		return nil, errors.New("mobile app: a store, a transport and a notice sequencer are required")
	}
	if err := opts.setDefaults(); err != nil {
		return nil, fmt.Errorf("mobile app: %w", err)
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("mobile app: %w", err)
	}
	a := &App{
		cfg: cfg, opts: opts, now: opts.Clock, st: deps.Store, dev: deps,
		log:    opts.Logger.With("component", "mobile"),
		issued: map[string]*issuedNotice{},
		periph: map[string]drivers.Status{},
		subs:   map[chan struct{}]struct{}{},
	}
	cat := opts.Catalogue
	if cat == nil {
		var err error
		if cat, err = a.loadCatalogue(ctx); err != nil {
			return nil, err
		}
	}
	var err error
	if a.issuer, err = enforcement.NewIssuer(cat, deps.Sequencer, enforcement.Options{
		Prefix: cfg.NoticePrefix, Location: opts.Location, Now: opts.Clock,
	}); err != nil {
		return nil, fmt.Errorf("mobile app: %w", err)
	}
	if a.render, err = enforcement.NewRenderer(cfg.Issuer, enforcement.RenderOptions{
		Columns: cfg.PaperColumns, Location: opts.Location, Device: cfg.Device,
	}); err != nil {
		return nil, fmt.Errorf("mobile app: %w", err)
	}
	if a.notices, err = openNoticeBook(ctx, deps.Store, a.log, opts.Clock, a.changed); err != nil {
		return nil, err
	}
	if a.places, err = openPlaces(ctx, deps.Store); err != nil {
		return nil, err
	}
	if a.tracker, err = roadwork.NewTracker(ctx, deps.Store, roadwork.TrackerOptions{
		OnChange: func(roadwork.Entry) { a.changed() }, Logger: a.log, Clock: opts.Clock,
	}); err != nil {
		return nil, fmt.Errorf("mobile app: %w", err)
	}
	so := opts.Shift
	so.Sources = append([]shift.CaseSource{a.notices, a.tracker}, so.Sources...)
	so.Clock, so.Location = opts.Clock, opts.Location
	if a.shifts, err = shift.New(ctx, deps.Store, cfg.Officers, so); err != nil {
		return nil, fmt.Errorf("mobile app: %w", err)
	}
	if err := a.newPhotos(); err != nil {
		return nil, err
	}

	ao := opts.Agent
	appCheck, appApply := ao.CheckConfig, ao.ApplyConfig
	ao.CheckConfig = func(values map[string]any) error {
		if err := a.checkTwin(values); err != nil {
			return err
		}
		if appCheck != nil {
			return appCheck(values)
		}
		return nil
	}
	ao.ApplyConfig = a.applyTwin(appApply)
	if a.ag, err = agent.New(agent.Config{Device: cfg.Device, Software: cfg.Software}, deps.Store, deps.Transport, ao); err != nil {
		return nil, fmt.Errorf("mobile app: %w", err)
	}
	if a.reporter, err = roadwork.NewReporter(a.ag, a.tracker, cfg.ReportOffice, roadwork.Options{
		Limits: cfg.Limits, Clock: opts.Clock,
	}); err != nil {
		return nil, fmt.Errorf("mobile app: %w", err)
	}
	a.trackerCh, a.stopTracker = a.ag.Watch()
	a.noticeCh, a.stopNotice = a.ag.Watch()
	return a, nil
}

// newPhotos builds the photo processor with the configured finders.
func (a *App) newPhotos() error {
	faces, plates := a.opts.Faces, a.opts.Plates
	var err error
	if faces == nil {
		if faces, err = photo.NewFaces(photo.DefaultFaceOptions); err != nil {
			return fmt.Errorf("mobile app: face finder: %w", err)
		}
	}
	if plates == nil {
		if plates, err = photo.NewPlates(photo.PlateOptions{}); err != nil {
			return fmt.Errorf("mobile app: plate finder: %w", err)
		}
	}
	if a.photos, err = photo.NewProcessor(faces, plates, a.opts.Photo); err != nil {
		return fmt.Errorf("mobile app: %w", err)
	}
	return nil
}

// runner is a device with a loop of its own (gnss.Serial).
type runner interface {
	Run(ctx context.Context) error
}

// Run runs the agent, the GNSS receiver (if it has a loop), the status
// followers and the peripheral checks until ctx ends or the agent fails
// for good. It may be called once.
func (a *App) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.runOnce {
		a.mu.Unlock()
		return errors.New("mobile app: Run was called before")
	}
	a.runOnce = true
	a.mu.Unlock()
	defer a.stopTracker()
	defer a.stopNotice()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg      sync.WaitGroup
		agErr   error
		gnssErr error
	)
	wg.Go(func() {
		defer cancel()
		agErr = a.ag.Run(ctx)
	})
	if r, ok := a.dev.GNSS.(runner); ok {
		wg.Go(func() { gnssErr = r.Run(ctx) })
	}
	wg.Go(func() { a.tracker.Follow(ctx, a.trackerCh) })
	wg.Go(func() { a.notices.Follow(ctx, a.noticeCh) })
	wg.Go(func() { a.watchPeripherals(ctx) })
	// Catch up with what changed while the app was not running.
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	if err := a.tracker.Refresh(rctx, a.ag); err != nil && ctx.Err() == nil {
		a.log.Warn("cannot refresh the report statuses", "err", err)
	}
	if err := a.notices.Refresh(rctx, a.ag); err != nil && ctx.Err() == nil {
		a.log.Warn("cannot refresh the notice statuses", "err", err)
	}
	rcancel()
	wg.Wait()
	if gnssErr != nil {
		a.log.Warn("GNSS receiver stopped", "err", gnssErr)
	}
	return agErr
}

// Changes returns a channel that receives a signal when something the
// screens show changed (a case's status, a peripheral, the shift, the
// catalogue), and a function that ends the subscription. Signals are
// coalesced: one pending signal stands for any number of changes.
func (a *App) Changes() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	a.mu.Lock()
	a.subs[ch] = struct{}{}
	a.mu.Unlock()
	return ch, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if _, ok := a.subs[ch]; ok {
			delete(a.subs, ch)
			close(ch)
		}
	}
}

// changed signals the subscribers and calls Options.OnChange.
func (a *App) changed() {
	a.mu.Lock()
	for ch := range a.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	a.mu.Unlock()
	a.opts.OnChange()
}

// Agent returns the device's agent, for what the app does not wrap (sync
// statistics, commands).
func (a *App) Agent() *agent.Agent { return a.ag }

// Now returns the app's clock.
func (a *App) Now() time.Time { return a.now() }

// Location returns the office's time zone.
func (a *App) Location() *time.Location { return a.opts.Location }

// Config returns the app's configuration with its defaults.
func (a *App) Config() Config { return a.cfg }

// Online reports whether the agent is connected to the fleet server.
func (a *App) Online() bool { return a.ag.Sync().Online }

// Queue is the number of records not yet at the fleet server.
func (a *App) Queue(ctx context.Context) (int, error) {
	s, err := a.st.Stats(ctx)
	if err != nil {
		return 0, err
	}
	return s.QueueDepth, nil
}

// OfficeKeys returns provisioned office keys for Options.Agent.Offices from
// recipients, keyed by office.
func OfficeKeys(rs ...seal.Recipient) map[string]seal.Recipient {
	out := make(map[string]seal.Recipient, len(rs))
	for _, r := range rs {
		out[r.Office] = r
	}
	return out
}
