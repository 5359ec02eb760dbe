package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/agent/update"
	"github.com/kogge-fleet/kogge/internal/config"
	mobileagent "github.com/kogge-fleet/kogge/mobile-agent"
	"github.com/kogge-fleet/kogge/mobile-agent/enforcement"
	"github.com/kogge-fleet/kogge/mobile-agent/roadwork"
	"github.com/kogge-fleet/kogge/mobile-agent/shift"
	"github.com/kogge-fleet/kogge/protocol/seal"
)

// Config is kogge-mobile's configuration: flags over KOGGE_* environment
// over the JSON file (internal/config).
type Config struct {
	// Simulate runs the whole chain in this process (see simulate.go).
	Simulate bool `config:"simulate" usage:"issue a notice and file a damage report offline, then deliver them, against a fleet server, the owi and open311 procedure simulators and simulated GNSS and printer, all in this process on loopback; then exit"`
	// Keep keeps the simulation's data directory.
	Keep bool `config:"keep" usage:"(simulate) keep the temporary data directory and print where it is"`
	// Script runs a script headless instead of the touch UI.
	Script string `config:"script" usage:"run the script FILE (- reads standard input) headless instead of the touch UI, then exit; with simulate: the offline part of the simulation"`
	// HashPIN prints the hash of a PIN for the officers file.
	HashPIN bool `config:"hash-pin" usage:"read a PIN from standard input and print its argon2id hash for the officers file, then exit"`

	DataDir string       `config:"data-dir" usage:"where the handheld keeps its identity (identity/), its store (agent.db) and its notice numbers (notice.seq)"`
	Enroll  EnrollConfig `config:"enroll"`
	Broker  string       `config:"broker" usage:"MQTT broker URL (ssl://host:8883); empty: the one named at enrollment"`

	NoticePrefix string   `config:"notice-prefix" usage:"the handheld's notice-number prefix: 1 to 8 capital letters and digits, unique in the fleet"`
	NoticeOffice string   `config:"notice-office" usage:"office notices are sealed for and delivered to (the fine office)"`
	ReportOffice string   `config:"report-office" usage:"office damage reports are sealed for and delivered to (road maintenance)"`
	OfficeKeys   []string `config:"office-keys" usage:"provisioned office keys OFFICE=KEY-ID:age1…, so that the handheld can seal before its twin arrived"`
	OfficersFile string   `config:"officers-file" usage:"JSON file with the officers who may log in: [{\"id\", \"name\", \"crew\", \"pin_hash\"}] (see hash-pin); the twin's officers replace them"`

	Issuer  IssuerConfig  `config:"issuer"`
	Devices DevicesConfig `config:"devices"`
	Limits  LimitsConfig  `config:"limits"`
	UI      UIConfig      `config:"ui"`
	Log     LogConfig     `config:"log"`
	Update  update.Config `config:"update"`
}

// EnrollConfig enrolls the handheld on its first start.
type EnrollConfig struct {
	Server        string `config:"server" usage:"fleet server's enrollment URL (https://…:8443), for the first start"`
	Code          string `config:"code" secret:"true" usage:"one-time enrollment code from the fleet admin, for the first start"`
	CAFingerprint string `config:"ca-fingerprint" usage:"SHA-256 fingerprint of the fleet CA, as the admin shows it with the code"`
	DeviceID      string `config:"device-id" usage:"device id to ask for; empty lets the server choose"`
	Serial        string `config:"serial" usage:"the handheld's serial number for the inventory"`
}

// IssuerConfig is the office printed on notices.
type IssuerConfig struct {
	Name        string `config:"name" usage:"the authority on the printed notice"`
	Unit        string `config:"unit" usage:"the department on the printed notice"`
	Address     string `config:"address" usage:"the office's postal address on one line"`
	Contact     string `config:"contact" usage:"phone number or web address for questions"`
	Payee       string `config:"payee" usage:"account holder of warning payments (default: name)"`
	IBAN        string `config:"iban" usage:"IBAN warnings are paid to"`
	BIC         string `config:"bic" usage:"BIC of the account (optional)"`
	PaymentDays int    `config:"payment-days" usage:"days to pay a warning (§ 56 Abs. 2 OWiG: a week)"`
}

// DevicesConfig says where the peripherals are.
type DevicesConfig struct {
	GNSS         string `config:"gnss" usage:"GNSS receiver's serial port (NMEA 0183), e.g. /dev/ttyACM0; empty: none"`
	Printer      string `config:"printer" usage:"ESC/POS printer: host:port (TCP) or a serial port (/dev/…); empty: none"`
	Camera       string `config:"camera" usage:"camera: an MJPEG stream URL (http://…) or a V4L2 device (/dev/video0); empty: none"`
	PaperColumns int    `config:"paper-columns" usage:"printer paper width in characters: 48 (80 mm) or 32 (58 mm)"`
}

// LimitsConfig bounds positions and photos.
type LimitsConfig struct {
	MaxAccuracy float64       `config:"max-accuracy" usage:"largest GNSS position error accepted, in metres"`
	MaxFixAge   time.Duration `config:"max-fix-age" usage:"oldest GNSS fix accepted"`
	MaxPhotos   int           `config:"max-photos" usage:"photos per notice or report (at most 8)"`
}

// UIConfig configures the touch UI.
type UIConfig struct {
	Lang     string `config:"lang" usage:"language of the UI: de or en"`
	Windowed bool   `config:"windowed" usage:"a phone-sized window instead of full screen (development)"`
}

// LogConfig configures logging (internal/config's shared settings).
type LogConfig = config.Log

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		DataDir:      "/var/lib/kogge-mobile",
		NoticeOffice: mobileagent.DefaultNoticeOffice,
		ReportOffice: mobileagent.DefaultReportOffice,
		Issuer:       IssuerConfig{PaymentDays: 7},
		Devices:      DevicesConfig{PaperColumns: 48},
		Limits: LimitsConfig{MaxAccuracy: roadwork.DefaultMaxAccuracy, MaxFixAge: roadwork.DefaultMaxFixAge,
			MaxPhotos: roadwork.DefaultMaxPhotos},
		UI:     UIConfig{Lang: "de"},
		Log:    LogConfig{Level: "info", Format: "text"},
		Update: update.DefaultConfig(),
	}
}

// Validate checks what can be checked without reading files; simulate
// and hash-pin need only the log settings.
func (c *Config) Validate() error {
	var errs []error
	if err := c.Log.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.UI.Lang != "de" && c.UI.Lang != "en" {
		errs = append(errs, fmt.Errorf("ui.lang %q: de or en", c.UI.Lang))
	}
	if c.Simulate && c.HashPIN {
		errs = append(errs, errors.New("simulate and hash-pin: choose one"))
	}
	if c.Simulate || c.HashPIN {
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
	if err := enforcement.CheckPrefix(c.NoticePrefix); err != nil {
		errs = append(errs, fmt.Errorf("notice-prefix: %w", err))
	}
	if _, err := c.officeKeys(); err != nil {
		errs = append(errs, err)
	}
	if c.OfficersFile == "" {
		errs = append(errs, errors.New("officers-file is not set: nobody could log in before the twin names officers"))
	}
	issuer := c.issuer()
	if err := issuer.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("issuer: %w", err))
	}
	if err := c.limits().Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *Config) issuer() enforcement.Office {
	i := c.Issuer
	return enforcement.Office{Name: i.Name, Unit: i.Unit, Address: i.Address, Contact: i.Contact, Payee: i.Payee,
		IBAN: i.IBAN, BIC: i.BIC, PaymentDays: i.PaymentDays}
}

func (c *Config) limits() roadwork.Limits {
	return roadwork.Limits{MaxAccuracy: c.Limits.MaxAccuracy, MaxFixAge: c.Limits.MaxFixAge, MaxPhotos: c.Limits.MaxPhotos}
}

// officeKeys reads the provisioned office keys: OFFICE=KEY-ID:age1….
func (c *Config) officeKeys() (map[string]seal.Recipient, error) {
	out := map[string]seal.Recipient{}
	for _, kv := range c.OfficeKeys {
		office, rest, ok1 := strings.Cut(kv, "=")
		keyID, pub, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("office-keys %q: want OFFICE=KEY-ID:age1…", kv)
		}
		r := seal.Recipient{Office: office, KeyID: keyID, PublicKey: pub}
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("office-keys %q: %w", kv, err)
		}
		out[office] = r
	}
	return out, nil
}

// readOfficers reads the officers file.
func readOfficers(file string) ([]shift.Officer, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("officers-file: %w", err)
	}
	list, err := parseOfficers(b)
	if err != nil {
		return nil, fmt.Errorf("officers-file %s: %w", file, err)
	}
	return list, nil
}

// parseOfficers reads the officers file's content.
func parseOfficers(b []byte) ([]shift.Officer, error) {
	var list []shift.Officer
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("want a JSON list of {\"id\", \"name\", \"crew\", \"pin_hash\"}: %w", err)
	}
	if len(list) == 0 {
		return nil, errors.New("no officer: nobody could log in")
	}
	if err := shift.CheckOfficers(list); err != nil {
		return nil, err
	}
	return list, nil
}

// app is the app's configuration.
func (c *Config) app(device, software string, officers []shift.Officer) mobileagent.Config {
	return mobileagent.Config{
		Device: device, Software: software, NoticePrefix: c.NoticePrefix,
		NoticeOffice: c.NoticeOffice, ReportOffice: c.ReportOffice, Issuer: c.issuer(), Officers: officers,
		PaperColumns: c.Devices.PaperColumns, Limits: c.limits(),
	}
}
