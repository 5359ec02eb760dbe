package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/agent/update"
	"github.com/kogge-fleet/kogge/drivers/camera"
	"github.com/kogge-fleet/kogge/internal/config"
	"github.com/kogge-fleet/kogge/kiosk"
	"github.com/kogge-fleet/kogge/kiosk/finger"
	"github.com/kogge-fleet/kogge/kiosk/flow"
	"github.com/kogge-fleet/kogge/kiosk/photo"
	"github.com/kogge-fleet/kogge/kiosk/signature"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// Config is kogge-kiosk's configuration: flags over KOGGE_* environment
// over the JSON file (internal/config).
type Config struct {
	// Simulate runs the whole chain in this process instead of the
	// terminal (see simulate.go).
	Simulate bool `config:"simulate" usage:"run one scripted citizen against simulated devices, a fleet server and the ID-document procedure simulator in this process (loopback only), then exit"`

	Headless bool `config:"headless" usage:"run without the touch screen: sessions wait at their welcome screen and what they show is logged (service and tests)"`
	Windowed bool `config:"windowed" usage:"show the touch screen in a window instead of full screen (development)"`

	DataDir string       `config:"data-dir" usage:"where the terminal keeps its identity (identity/) and its store (agent.db)"`
	Enroll  EnrollConfig `config:"enroll"`
	Broker  string       `config:"broker" usage:"MQTT broker URL (ssl://host:8883); empty: the one named at enrollment"`

	Office       string   `config:"office" usage:"office the applications are sealed for and delivered to, e.g. buergeramt-mitte"`
	Terminal     string   `config:"terminal" usage:"the terminal's location label on receipts and applications"`
	NumberPrefix string   `config:"number-prefix" usage:"the terminal's code in its application numbers: 2 to 8 capital letters and digits, unique in the city"`
	Languages    []string `config:"languages" usage:"offered languages (BCP 47), in order"`
	Documents    []string `config:"documents" usage:"offered documents: id-card, passport, temporary-id"`

	EID      EIDConfig      `config:"eid"`
	Fee      FeeConfig      `config:"fee"`
	Photo    PhotoConfig    `config:"photo"`
	Finger   FingerConfig   `config:"finger"`
	Timeouts TimeoutsConfig `config:"timeouts"`
	Devices  DevicesConfig  `config:"devices"`
	Admin    AdminConfig    `config:"admin"`
	Log      LogConfig      `config:"log"`
	Update   update.Config  `config:"update"`

	CheckInterval time.Duration `config:"check-interval" usage:"how often the peripherals are checked"`
}

// EnrollConfig enrolls the terminal on its first start.
type EnrollConfig struct {
	Server        string `config:"server" usage:"fleet server's enrollment URL (https://…:8443), for the first start"`
	Code          string `config:"code" secret:"true" usage:"one-time enrollment code from the fleet admin, for the first start"`
	CAFingerprint string `config:"ca-fingerprint" usage:"SHA-256 fingerprint of the fleet CA, as the admin shows it with the code"`
	DeviceID      string `config:"device-id" usage:"device id to ask for; empty lets the server choose"`
	Serial        string `config:"serial" usage:"the terminal's serial number for the inventory"`
}

// EIDConfig is the identification with the eID card.
type EIDConfig struct {
	Enabled    bool   `config:"enabled" usage:"offer identification with the eID card"`
	URL        string `config:"url" usage:"the AusweisApp's SDK WebSocket"`
	TCTokenURL string `config:"tc-token-url" usage:"the eID service's tcToken URL (https://…)"`
}

// FeeConfig are the fees.
type FeeConfig struct {
	IDCard      int64 `config:"id-card" usage:"fee of an ID card in euro cents"`
	Passport    int64 `config:"passport" usage:"fee of a passport in euro cents"`
	TemporaryID int64 `config:"temporary-id" usage:"fee of a temporary ID in euro cents"`
	AtCounter   bool  `config:"at-counter" usage:"take fees at the counter: no payment terminal"`
	Attempts    int   `config:"attempts" usage:"how often a declined or aborted payment may be tried"`
}

// PhotoConfig is the photo step.
type PhotoConfig struct {
	Width        int           `config:"width" usage:"camera mode asked for: width"`
	Height       int           `config:"height" usage:"camera mode asked for: height"`
	FPS          int           `config:"fps" usage:"camera mode asked for: frames per second"`
	Attempts     int           `config:"attempts" usage:"capture windows per citizen"`
	Time         time.Duration `config:"time" usage:"length of one capture window"`
	GoodFrames   int           `config:"good-frames" usage:"acceptable frames that end a window early"`
	Candidates   int           `config:"candidates" usage:"equally good photos offered for choice, at most"`
	PADThreshold float64       `config:"pad-threshold" usage:"highest presentation-attack score that passes (0–1)"`
	// Checks are the photo rules' thresholds (kiosk/photo).
	Checks photo.Config `config:"checks"`
}

// FingerConfig is the fingerprint steps.
type FingerConfig struct {
	Attempts  int           `config:"attempts" usage:"attempts per finger"`
	Timeout   time.Duration `config:"timeout" usage:"time for a finger to come to the scanner, per attempt"`
	Threshold uint8         `config:"threshold" usage:"lowest NFIQ 2 score accepted (0–100)"`
	MinAge    int           `config:"min-age" usage:"no fingerprints from children younger than this (years), when the date of birth is known"`
	// MinForeground is kiosk/finger's least share of the image the finger
	// must cover.
	MinForeground float64 `config:"min-foreground" usage:"least share of the sensor image (0–1) the finger must cover"`
}

// TimeoutsConfig are the steps' inactivity timeouts.
type TimeoutsConfig struct {
	Warning   time.Duration `config:"warning" usage:"how long before a timeout the screen asks for more time"`
	Language  time.Duration `config:"language" usage:"inactivity timeout of the language step"`
	Documents time.Duration `config:"documents" usage:"inactivity timeout of the documents step"`
	Identify  time.Duration `config:"identify" usage:"inactivity timeout of the eID step"`
	Photo     time.Duration `config:"photo" usage:"inactivity timeout of the photo retry and choice"`
	Finger    time.Duration `config:"finger" usage:"inactivity timeout of the finger retry"`
	Signature time.Duration `config:"signature" usage:"inactivity timeout of the signature step"`
	Payment   time.Duration `config:"payment" usage:"inactivity timeout of the payment step"`
	Review    time.Duration `config:"review" usage:"inactivity timeout of the review step"`
	End       time.Duration `config:"end" usage:"how long the receipt, counter and cancelled screens stay"`
}

// DevicesConfig says where the peripherals are.
type DevicesConfig struct {
	Camera      string `config:"camera" usage:"camera: an MJPEG stream URL (http://…) or a V4L2 device (/dev/video0)"`
	Fingerprint string `config:"fingerprint" usage:"fingerprint module (R30x) serial port, e.g. /dev/ttyUSB0"`
	Payment     string `config:"payment" usage:"ZVT payment terminal: host:port (TCP) or a serial port (/dev/…)"`
	Printer     string `config:"printer" usage:"ESC/POS receipt printer: host:port (TCP) or a serial port (/dev/…)"`
}

// AdminConfig is the staff's admin screen.
type AdminConfig struct {
	PIN string `config:"pin" secret:"true" usage:"PIN of the hidden admin screen (4–12 characters); empty keeps it shut"`
}

// LogConfig configures logging (internal/config's shared settings).
type LogConfig = config.Log

// DefaultConfig returns the defaults: the flow's (kiosk/flow.DefaultConfig).
func DefaultConfig() Config {
	f := flow.DefaultConfig()
	t := f.Timeouts
	return Config{
		DataDir:   "/var/lib/kogge-kiosk",
		Languages: f.Languages, Documents: f.Documents,
		EID: EIDConfig{URL: "ws://127.0.0.1:24727/eID-Kernel"},
		Fee: FeeConfig{IDCard: f.Fees[casefile.ServiceIDCard], Passport: f.Fees[casefile.ServicePassport],
			TemporaryID: f.Fees[casefile.ServiceTemporaryID], Attempts: f.PaymentAttempts},
		Photo: PhotoConfig{Width: f.Photo.Mode.Width, Height: f.Photo.Mode.Height, FPS: f.Photo.Mode.FPS,
			Attempts: f.Photo.Attempts, Time: f.Photo.Time, GoodFrames: f.Photo.GoodFrames,
			Candidates: f.Photo.Candidates, PADThreshold: f.Photo.PADThreshold, Checks: photo.DefaultConfig()},
		Finger: FingerConfig{Attempts: f.Finger.Attempts, Timeout: f.Finger.Timeout, Threshold: f.Finger.Threshold,
			MinAge: f.Finger.MinAgeYears, MinForeground: finger.DefaultConfig().MinForeground},
		Timeouts: TimeoutsConfig{Warning: t.Warning, Language: t.Language, Documents: t.Documents, Identify: t.Identify,
			Photo: t.Photo, Finger: t.Finger, Signature: t.Signature, Payment: t.Payment, Review: t.Review, End: t.End},
		Log:           LogConfig{Level: "info", Format: "json"},
		Update:        update.DefaultConfig(),
		CheckInterval: 30 * time.Second,
	}
}

// kiosk is the terminal's configuration for package kiosk.
func (c *Config) kiosk(version string) kiosk.Config {
	f := flow.DefaultConfig()
	f.Office, f.Terminal = c.Office, c.Terminal
	f.Languages, f.Documents = c.Languages, c.Documents
	f.EID = flow.EIDConfig{Enabled: c.EID.Enabled, TCTokenURL: c.EID.TCTokenURL}
	f.Fees = map[string]int64{casefile.ServiceIDCard: c.Fee.IDCard, casefile.ServicePassport: c.Fee.Passport,
		casefile.ServiceTemporaryID: c.Fee.TemporaryID}
	f.PayAtCounter, f.PaymentAttempts = c.Fee.AtCounter, c.Fee.Attempts
	f.Photo.Mode = camera.Mode{Width: c.Photo.Width, Height: c.Photo.Height, FPS: c.Photo.FPS}
	f.Photo.Attempts, f.Photo.Time, f.Photo.GoodFrames = c.Photo.Attempts, c.Photo.Time, c.Photo.GoodFrames
	f.Photo.Candidates, f.Photo.PADThreshold = c.Photo.Candidates, c.Photo.PADThreshold
	f.Finger = flow.FingerConfig{Attempts: c.Finger.Attempts, Timeout: c.Finger.Timeout, Threshold: c.Finger.Threshold,
		MinAgeYears: c.Finger.MinAge}
	t := &f.Timeouts
	t.Warning, t.Language, t.Documents, t.Identify = c.Timeouts.Warning, c.Timeouts.Language, c.Timeouts.Documents, c.Timeouts.Identify
	t.Photo, t.Finger, t.Signature, t.Payment = c.Timeouts.Photo, c.Timeouts.Finger, c.Timeouts.Signature, c.Timeouts.Payment
	t.Review, t.End = c.Timeouts.Review, c.Timeouts.End
	return kiosk.Config{Flow: f, NumberPrefix: c.NumberPrefix, AdminPIN: c.Admin.PIN, Version: version,
		CheckInterval: c.CheckInterval}
}

// quality builds the capture-quality checks from the configuration.
func (c *Config) quality(opts *kiosk.Options) error {
	pc, err := photo.New(c.Photo.Checks, nil)
	if err != nil {
		return fmt.Errorf("photo.checks: %w", err)
	}
	fc := finger.DefaultConfig()
	fc.Threshold, fc.MinForeground = c.Finger.Threshold, c.Finger.MinForeground
	fs, err := finger.New(fc)
	if err != nil {
		return fmt.Errorf("finger: %w", err)
	}
	sr, err := signature.New(signature.DefaultOptions())
	if err != nil {
		return err
	}
	opts.Faces, opts.CheckCameraMode = kiosk.Faces(pc), c.Photo.Checks.CheckCameraMode
	opts.Fingers, opts.Signatures = fs, kiosk.Signatures(sr)
	return nil
}

// Validate checks the configuration; --simulate needs only the log
// settings, it brings the rest itself.
func (c *Config) Validate() error {
	var errs []error
	if err := c.Log.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Simulate {
		return errors.Join(errs...)
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data-dir is not set"))
	}
	if err := c.Update.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Enroll.Code != "" && (c.Enroll.Server == "" || c.Enroll.CAFingerprint == "") {
		errs = append(errs, errors.New("enroll.code needs enroll.server and enroll.ca-fingerprint"))
	}
	if c.Broker != "" {
		if u, err := url.Parse(c.Broker); err != nil || (u.Scheme != "ssl" && u.Scheme != "tls" && u.Scheme != "mqtts") {
			errs = append(errs, fmt.Errorf("broker %q: want ssl://host:port", c.Broker))
		}
	}
	need := func(v, name string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is not set", name))
		}
	}
	need(c.Devices.Camera, "devices.camera")
	need(c.Devices.Fingerprint, "devices.fingerprint")
	need(c.Devices.Printer, "devices.printer")
	if !c.Fee.AtCounter {
		need(c.Devices.Payment, "devices.payment (or fee.at-counter)")
	}
	if c.EID.Enabled && !strings.HasPrefix(c.EID.URL, "ws://") {
		errs = append(errs, fmt.Errorf("eid.url %q: want the AusweisApp's ws:// address", c.EID.URL))
	}
	if err := c.kiosk("").Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
