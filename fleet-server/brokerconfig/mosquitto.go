package brokerconfig

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// File names in a broker configuration directory.
const (
	FileConf    = "mosquitto.conf"
	FileACL     = "acl"
	FileCA      = "ca.pem"
	FileCert    = "server.pem"
	FileKey     = "server.key"
	FileCRL     = "crl.pem"
	FileState   = "kogge-broker.json"
	FilePid     = "mosquitto.pid"
	FileEMQX    = "emqx-kogge.hocon"
	dirData     = "data"
	defaultPort = "8883"
)

// Defaults of the generated configurations.
const (
	DefaultCertLifetime = 365 * 24 * time.Hour
	DefaultCRLValidity  = 30 * 24 * time.Hour
	// ShareGroup is the shared-subscription group of the replicas.
	ShareGroup = "kogge"
)

// Mosquitto describes a Mosquitto broker for a fleet. It is stored in the
// directory as kogge-broker.json, so that Update can regenerate the ACL.
type Mosquitto struct {
	// ConfDir is the directory as the broker sees it, for the paths in
	// mosquitto.conf; default: the directory the files are written to.
	ConfDir string `json:"conf_dir"`
	// Listen is [HOST:]PORT of the TLS listener; default 8883 on every
	// address.
	Listen string `json:"listen"`
	// Names are the DNS names and IP addresses in the broker's
	// certificate: the ones devices and replicas connect to.
	Names []string `json:"names"`
	// Replicas are the ids of the kogge-server replicas (their setting
	// replica); each gets read access to every uplink and write access to
	// every downlink as user ServerPrefix+id.
	Replicas []string `json:"replicas"`
	// User is the system user Mosquitto drops to when started as root;
	// default "mosquitto". The written files are given to it when the
	// writer runs as root.
	User string `json:"user"`
	// PidFile is the broker's pid file, which Reload signals; default
	// mosquitto.pid in ConfDir.
	PidFile string `json:"pid_file"`
	// CertLifetime is the lifetime of the broker certificate; default
	// 365 days.
	CertLifetime time.Duration `json:"cert_lifetime"`
	// CRLValidity is how long a CRL is valid; default 30 days. It is
	// signed again when half of it has passed.
	CRLValidity time.Duration `json:"crl_validity"`
	// MaxQueued bounds the messages Mosquitto queues for one client
	// (max_queued_messages, 100,000): the replicas take the whole uplink.
	MaxQueued int `json:"max_queued"`
}

func (m *Mosquitto) defaults(dir string) {
	if m.ConfDir == "" {
		m.ConfDir = dir
	}
	if m.Listen == "" {
		m.Listen = defaultPort
	}
	if m.User == "" {
		m.User = "mosquitto"
	}
	if m.PidFile == "" {
		m.PidFile = filepath.Join(m.ConfDir, FilePid)
	}
	if m.CertLifetime == 0 {
		m.CertLifetime = DefaultCertLifetime
	}
	if m.CRLValidity == 0 {
		m.CRLValidity = DefaultCRLValidity
	}
	if m.MaxQueued == 0 {
		m.MaxQueued = 100_000
	}
}

// Validate checks the description after defaults are filled in.
func (m *Mosquitto) Validate() error {
	var errs []error
	if !filepath.IsAbs(m.ConfDir) {
		errs = append(errs, fmt.Errorf("configuration directory %q must be an absolute path (the broker reads the files by it)", m.ConfDir))
	}
	if _, _, err := listenParts(m.Listen); err != nil {
		errs = append(errs, err)
	}
	if len(m.Names) == 0 {
		errs = append(errs, errors.New("no broker names: give the DNS names or IP addresses devices and replicas connect to"))
	}
	if len(m.Replicas) == 0 {
		errs = append(errs, errors.New("no replicas: give the ids of the kogge-server replicas (their setting replica)"))
	}
	for _, r := range m.Replicas {
		if err := ValidateReplica(r); err != nil {
			errs = append(errs, err)
		}
	}
	if m.User == "" || strings.ContainsAny(m.User, " \n") {
		errs = append(errs, fmt.Errorf("user %q is not a system user name", m.User))
	}
	if m.CertLifetime < time.Hour || m.CRLValidity < time.Hour {
		errs = append(errs, errors.New("certificate lifetime and CRL validity must be at least an hour"))
	}
	if m.MaxQueued < 1000 {
		errs = append(errs, fmt.Errorf("max queued %d: at least 1000", m.MaxQueued))
	}
	for _, s := range append([]string{m.ConfDir, m.PidFile}, m.Names...) {
		if strings.ContainsAny(s, "\n\r") {
			errs = append(errs, fmt.Errorf("%q contains a line break", s))
		}
	}
	return errors.Join(errs...)
}

// listenParts splits [HOST:]PORT.
func listenParts(listen string) (host, port string, err error) {
	if !strings.Contains(listen, ":") {
		host, port = "", listen
	} else if host, port, err = net.SplitHostPort(listen); err != nil {
		return "", "", fmt.Errorf("listen %q: want [HOST:]PORT", listen)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("listen %q: port must be 1 to 65535", listen)
	}
	return host, port, nil
}

// Revoked is what the broker must refuse: revoked devices (by id), the
// serials of revoked certificates, and bridge identities.
type Revoked struct {
	Devices []string
	Serials []string
	// Bridges are the common names of bridge certificates (bridge.OFFICE).
	Bridges []string
}

// ReadRevoked reads the revocations from the store, sorted.
func ReadRevoked(ctx context.Context, db *store.DB, now time.Time) (Revoked, error) {
	devices, serials, err := db.Revocations(ctx, now.UnixMilli())
	if err != nil {
		return Revoked{}, err
	}
	bcs, err := db.BridgeCerts(ctx, "")
	if err != nil {
		return Revoked{}, fmt.Errorf("read bridge certificates: %w", err)
	}
	var bridges []string
	for _, b := range bcs {
		bridges = append(bridges, registry.BridgePrefix+b.Office)
	}
	r := Revoked{Devices: devices, Serials: serials, Bridges: bridges}
	for _, l := range []*[]string{&r.Devices, &r.Serials, &r.Bridges} {
		slices.Sort(*l)
		*l = slices.Compact(*l)
	}
	return r, nil
}

// digest identifies a set of revocations.
func (r Revoked) digest() string {
	h := sha256.New()
	for _, l := range [][]string{r.Devices, r.Serials, r.Bridges} {
		for _, s := range l {
			h.Write([]byte(s))
			h.Write([]byte{0})
		}
		h.Write([]byte{1})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// MosquittoACL returns the ACL file: the replicas' rights, the devices'
// patterns, and a deny of everything for revoked devices and bridges.
// User names that cannot be written safely into the file are left out
// (they cannot be device ids either).
func MosquittoACL(replicas []string, rev Revoked) []byte {
	var b bytes.Buffer
	b.WriteString("# Mosquitto ACL of a Kogge fleet, written by koggectl broker-config or kogge-server.\n")
	b.WriteString("# Do not edit: it is rewritten when a device is revoked.\n\n")
	b.WriteString("# Server replicas: every device's uplink and presence in, every downlink and twin out.\n")
	for _, r := range replicas {
		if ValidateReplica(r) != nil {
			continue
		}
		fmt.Fprintf(&b, "user %s\n", ReplicaUser(r))
		for _, rule := range []string{
			"read " + protocol.UpFilter, "read " + protocol.StateFilter,
			"write " + protocol.TopicRoot + "+/down/#", "write " + protocol.TopicRoot + "+/twin",
			"readwrite " + ProbeTopic(r),
		} {
			fmt.Fprintf(&b, "topic %s\n", rule)
		}
		b.WriteString("\n")
	}
	deny := func(title string, users []string) {
		if len(users) == 0 {
			return
		}
		fmt.Fprintf(&b, "# %s: nothing in, nothing out (their open connections too, after a reload).\n", title)
		for _, u := range users {
			if u == "" || strings.ContainsAny(u, " \t\r\n#") {
				continue
			}
			fmt.Fprintf(&b, "user %s\ntopic deny #\n", u)
		}
		b.WriteString("\n")
	}
	deny("Revoked devices", rev.Devices)
	deny("Bridges (they use the bridge API, never MQTT)", rev.Bridges)
	b.WriteString("# Devices: the user name is the certificate's common name, the device id.\n")
	for _, rule := range []string{
		"write " + protocol.TopicRoot + "%u/up/#",
		"write " + protocol.TopicRoot + "%u/state",
		"read " + protocol.TopicRoot + "%u/down/#",
		"read " + protocol.TopicRoot + "%u/twin",
	} {
		fmt.Fprintf(&b, "pattern %s\n", rule)
	}
	return b.Bytes()
}

// Conf returns mosquitto.conf.
func (m *Mosquitto) Conf() []byte {
	host, port, _ := listenParts(m.Listen)
	p := func(name string) string { return filepath.Join(m.ConfDir, name) }
	var b bytes.Buffer
	fmt.Fprintf(&b, `# Mosquitto for a Kogge fleet, written by koggectl broker-config mosquitto.
# Regenerate rather than edit. crl.pem and acl are rewritten on revocation
# (by kogge-server with broker.external.mosquitto-dir, or by
# koggectl broker-config mosquitto --watch), which then sends SIGHUP.
per_listener_settings false
allow_anonymous false
acl_file %s
user %s
pid_file %s

# Devices and replicas keep clean sessions; retained twins and presence
# survive a restart.
persistence true
persistence_location %s/
autosave_interval 60

# The largest Kogge message plus room for the MQTT header.
max_packet_size %d
# Each replica receives the uplink of the whole fleet: room to queue it.
max_inflight_messages 1000
max_queued_messages %d

log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
connection_messages false

# Devices and replicas: mutual TLS with the fleet CA. The certificate's
# common name is the user name and the client id.
listener %s
cafile %s
certfile %s
keyfile %s
crlfile %s
require_certificate true
use_identity_as_username true
use_username_as_clientid true
`, p(FileACL), m.User, m.PidFile, p(dirData), protocol.MaxMessageSize+64<<10, m.MaxQueued,
		strings.TrimSpace(port+" "+host), p(FileCA), p(FileCert), p(FileKey), p(FileCRL))
	return b.Bytes()
}

// state is kogge-broker.json: what Update needs besides the store.
type state struct {
	Kind      string     `json:"kind"` // mosquitto
	Mosquitto *Mosquitto `json:"mosquitto,omitempty"`
	// CRLNumber is the number of the CRL in crl.pem, CRLSigned when it
	// was signed, Revoked the digest of the revocations in it.
	CRLNumber int64     `json:"crl_number"`
	CRLSigned time.Time `json:"crl_signed"`
	Revoked   string    `json:"revoked"`
}

// WriteMosquitto writes a Mosquitto configuration for the fleet whose
// store is db into dir (created if missing): a new broker certificate, the
// current CRL and ACL, and mosquitto.conf. Existing files are replaced.
func WriteMosquitto(ctx context.Context, db *store.DB, dir string, m Mosquitto, now time.Time) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	m.defaults(dir)
	if err := m.Validate(); err != nil {
		return fmt.Errorf("mosquitto configuration: %w", err)
	}
	ca, err := LoadCA(ctx, db)
	if err != nil {
		return err
	}
	rev, err := ReadRevoked(ctx, db, now)
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := ca.IssueBroker(m.Names, now, m.CertLifetime)
	if err != nil {
		return err
	}
	crl, err := ca.CRL(rev.Serials, 1, now, m.CRLValidity)
	if err != nil {
		return err
	}
	st := state{Kind: "mosquitto", Mosquitto: &m, CRLNumber: 1, CRLSigned: now.UTC(), Revoked: rev.digest()}
	stJSON, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	w, err := newWriter(dir, m.User)
	if err != nil {
		return err
	}
	if err := w.mkdir(dirData); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{FileCA, ca.CertPEM(), 0o644},
		{FileCert, certPEM, 0o644},
		{FileKey, keyPEM, 0o600},
		{FileCRL, crl, 0o644},
		{FileACL, MosquittoACL(m.Replicas, rev), 0o640},
		{FileConf, m.Conf(), 0o644},
		{FileState, append(stJSON, '\n'), 0o600},
	} {
		if err := w.write(f.name, f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// Update brings crl.pem and acl in dir (written by WriteMosquitto) up to
// the store's revocations, and signs the CRL again when half of its
// validity has passed. It reports whether it changed them; then the broker
// needs a reload (Reload with PidFile).
func Update(ctx context.Context, db *store.DB, dir string, now time.Time) (changed bool, pidFile string, err error) {
	b, err := os.ReadFile(filepath.Join(dir, FileState))
	if err != nil {
		return false, "", fmt.Errorf("read the broker configuration state: %w (write the configuration with koggectl broker-config mosquitto first)", err)
	}
	st, err := parseState(b)
	if err != nil {
		return false, "", err
	}
	m := st.Mosquitto
	rev, err := ReadRevoked(ctx, db, now)
	if err != nil {
		return false, m.PidFile, err
	}
	digest := rev.digest()
	if digest == st.Revoked && now.Sub(st.CRLSigned) < m.CRLValidity/2 {
		return false, m.PidFile, nil
	}
	ca, err := LoadCA(ctx, db)
	if err != nil {
		return false, m.PidFile, err
	}
	st.CRLNumber++
	crl, err := ca.CRL(rev.Serials, st.CRLNumber, now, m.CRLValidity)
	if err != nil {
		return false, m.PidFile, err
	}
	st.CRLSigned, st.Revoked = now.UTC(), digest
	stJSON, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return false, m.PidFile, err
	}
	w, err := newWriter(dir, m.User)
	if err != nil {
		return false, m.PidFile, err
	}
	// The ACL first: a reload between the two writes then denies the
	// revoked device already.
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{FileACL, MosquittoACL(m.Replicas, rev), 0o640},
		{FileCRL, crl, 0o644},
		{FileState, append(stJSON, '\n'), 0o600},
	} {
		if err := w.write(f.name, f.data, f.mode); err != nil {
			return false, m.PidFile, err
		}
	}
	return true, m.PidFile, nil
}

// parseState reads kogge-broker.json.
func parseState(b []byte) (state, error) {
	var st state
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if len(b) > 1<<20 {
		return st, errors.New("broker configuration state: larger than 1 MiB")
	}
	if err := dec.Decode(&st); err != nil {
		return st, fmt.Errorf("broker configuration state %s: %w", FileState, err)
	}
	if st.Kind != "mosquitto" || st.Mosquitto == nil {
		return st, fmt.Errorf("broker configuration state %s: kind %q, want mosquitto", FileState, st.Kind)
	}
	if err := st.Mosquitto.Validate(); err != nil {
		return st, fmt.Errorf("broker configuration state %s: %w", FileState, err)
	}
	return st, nil
}

// Reload makes Mosquitto read its configuration, ACL and CRL again: SIGHUP
// to the process in pidFile.
func Reload(pidFile string) error {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return fmt.Errorf("reload mosquitto: %w (is it running with pid_file %s?)", err, pidFile)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("reload mosquitto: pid file %s holds %q, not a process id", pidFile, bytes.TrimSpace(b))
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("reload mosquitto: signal process %d from %s: %w", pid, pidFile, err)
	}
	return nil
}

// writer writes files atomically into a directory, giving them to the
// broker's user when it runs as root.
type writer struct {
	dir      string
	uid, gid int
	chown    bool
}

func newWriter(dir, owner string) (*writer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	w := &writer{dir: dir}
	if os.Geteuid() == 0 && owner != "root" {
		u, err := user.Lookup(owner)
		if err != nil {
			return nil, fmt.Errorf("look up the broker's user %q: %w (create it, or name the user the broker runs as)", owner, err)
		}
		w.uid, _ = strconv.Atoi(u.Uid)
		w.gid, _ = strconv.Atoi(u.Gid)
		w.chown = true
	}
	return w, nil
}

func (w *writer) mkdir(name string) error {
	p := filepath.Join(w.dir, name)
	if err := os.MkdirAll(p, 0o750); err != nil {
		return fmt.Errorf("create %s: %w", p, err)
	}
	if w.chown {
		if err := os.Chown(p, w.uid, w.gid); err != nil {
			return fmt.Errorf("give %s to the broker's user: %w", p, err)
		}
	}
	return nil
}

func (w *writer) write(name string, data []byte, mode os.FileMode) error {
	p := filepath.Join(w.dir, name)
	f, err := os.CreateTemp(w.dir, "."+name+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	err = errors.Join(werr, serr, cerr, os.Chmod(tmp, mode))
	if err == nil && w.chown && name != FileState {
		err = os.Chown(tmp, w.uid, w.gid)
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}
