package update

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol/artifact"
)

// The update directory:
//
//	state.json            the state below, replaced atomically
//	slots/a/, slots/b/    the two versions side by side: binary and
//	                      manifest (the signed manifest it was installed from)
//	download/SHA.part     a download in progress, resumed after a cut
const (
	stateFile   = "state.json"
	slotsDir    = "slots"
	downloadDir = "download"
	// BinaryFile and ManifestFile are the files of a slot.
	BinaryFile   = "binary"
	ManifestFile = "manifest"
)

// The slots.
const (
	SlotA = "a"
	SlotB = "b"
)

func otherSlot(s string) string {
	if s == SlotA {
		return SlotB
	}
	return SlotA
}

// state is what the updater keeps across restarts.
type state struct {
	// Active is the slot that runs (or that the next start runs).
	Active string              `json:"active"`
	Slots  map[string]slotInfo `json:"slots"`
	// Trial is set from the switch to a new version until it passed its
	// health check or was left again.
	Trial *trial `json:"trial,omitempty"`
	// Job is an update received and not yet installed.
	Job *job `json:"job,omitempty"`
	// Reports are waiting for the server's acknowledgement, oldest first.
	Reports []artifact.Report `json:"reports,omitempty"`
	// Seq numbers the reports.
	Seq uint64 `json:"seq"`
	// Done is the last outcome per rollout, to answer a repeated command
	// without doing anything twice; the newest doneKeep are kept.
	Done []done `json:"done,omitempty"`
}

type slotInfo struct {
	Version     string    `json:"version"`
	InstalledAt time.Time `json:"installed_at,omitzero"`
}

type trial struct {
	Rollout     uuid.UUID `json:"rollout"`
	From        string    `json:"from"`
	FromVersion string    `json:"from_version"`
	Version     string    `json:"version"`
	Boots       int       `json:"boots"`
	Switched    time.Time `json:"switched"`
}

type job struct {
	Rollout        uuid.UUID `json:"rollout"`
	Artifact       uuid.UUID `json:"artifact"`
	Version        string    `json:"version"`
	AllowDowngrade string    `json:"allow_downgrade,omitempty"`
	Received       time.Time `json:"received"`
}

type done struct {
	Rollout uuid.UUID `json:"rollout"`
	State   string    `json:"state"`
}

const (
	doneKeep   = 32
	maxReports = 256
)

func (s *state) done(rollout uuid.UUID) (string, bool) {
	for _, d := range s.Done {
		if d.Rollout == rollout {
			return d.State, true
		}
	}
	return "", false
}

func (s *state) setDone(rollout uuid.UUID, st string) {
	s.Done = slices.DeleteFunc(s.Done, func(d done) bool { return d.Rollout == rollout })
	s.Done = append(s.Done, done{Rollout: rollout, State: st})
	if len(s.Done) > doneKeep {
		s.Done = s.Done[len(s.Done)-doneKeep:]
	}
}

// addReport queues a report; the oldest progress reports give way first
// when too many wait.
func (s *state) addReport(r artifact.Report) {
	s.Seq++
	r.Seq = s.Seq
	s.Reports = append(s.Reports, r)
	for len(s.Reports) > maxReports {
		i := slices.IndexFunc(s.Reports, func(r artifact.Report) bool { return r.State == artifact.ReportDownloading })
		if i < 0 {
			i = 0
		}
		s.Reports = slices.Delete(s.Reports, i, i+1)
	}
}

func (s *state) running() string { return s.Slots[s.Active].Version }

func (s *state) clone() *state {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // plain data
	}
	var c state
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	return &c
}

func (s *state) validate() error {
	if s.Active != SlotA && s.Active != SlotB {
		return fmt.Errorf("active slot %q: want a or b", s.Active)
	}
	if s.Slots[s.Active].Version == "" {
		return fmt.Errorf("active slot %s has no version", s.Active)
	}
	if t := s.Trial; t != nil && (t.From != otherSlot(s.Active) || t.Version == "") {
		return fmt.Errorf("trial of %q from slot %q does not fit the active slot %s", t.Version, t.From, s.Active)
	}
	return nil
}

// loadState reads the state of dir; a missing file is a new device that
// runs factory in slot a.
func loadState(dir, factory string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		if factory == "" {
			return nil, errors.New("update state: none yet, and no factory version to start from")
		}
		return &state{Active: SlotA, Slots: map[string]slotInfo{SlotA: {Version: factory}}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read update state: %w", err)
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("update state %s is damaged: %w; move it away to start over from the running version",
			filepath.Join(dir, stateFile), err)
	}
	if s.Slots == nil {
		s.Slots = map[string]slotInfo{}
	}
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("update state %s: %w", filepath.Join(dir, stateFile), err)
	}
	return &s, nil
}

// save writes the state atomically and durably: a temporary file, fsync,
// rename, fsync of the directory.
func (s *state) save(dir string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode update state: %w", err)
	}
	return writeAtomic(dir, stateFile, b, 0o600)
}

func writeAtomic(dir, name string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	tmp := f.Name()
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr, os.Chmod(tmp, mode)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// Slot is the version a start runs.
type Slot struct {
	// Name is a or b.
	Name string
	// Version is the version installed in it.
	Version string
	// Dir is the slot's directory; Binary the binary in it, which is
	// missing for the factory version, which was not installed by an
	// update.
	Dir, Binary string
	// Trial is set while the version has not yet passed its health check.
	Trial bool
	// Boots counts the starts of a version on trial, this one included.
	Boots int
}

// BootOptions tune Boot.
type BootOptions struct {
	// MaxBoots is how often a version on trial may start without passing
	// its health check before the device goes back to the previous one
	// (crash loop); default 3.
	MaxBoots int
	// Now is the clock (time.Now).
	Now func() time.Time
}

// Boot chooses the version a start of the device runs. Call it before the
// app starts, at every start (a launcher or the app's main does it): it
// counts the starts of a version on trial, and after MaxBoots starts that
// never passed the health check (a crash loop) it switches back to the
// previous version and queues a report that says so. factory is the
// version a device runs whose update directory is new.
func Boot(dir, factory string, opts BootOptions) (Slot, error) {
	if opts.MaxBoots == 0 {
		opts.MaxBoots = 3
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxBoots < 1 {
		return Slot{}, fmt.Errorf("update boot: max boots %d: at least 1", opts.MaxBoots)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Slot{}, fmt.Errorf("update directory: %w", err)
	}
	s, err := loadState(dir, factory)
	if err != nil {
		return Slot{}, err
	}
	if t := s.Trial; t != nil {
		t.Boots++
		if t.Boots > opts.MaxBoots {
			s.addReport(artifact.Report{
				Rollout: t.Rollout, State: artifact.ReportRolledBack, Version: t.Version, Running: t.FromVersion,
				Reason: fmt.Sprintf("crash loop: %s started %d times without passing its health check; back to %s",
					t.Version, t.Boots-1, t.FromVersion),
				At: opts.Now(),
			})
			s.setDone(t.Rollout, artifact.ReportRolledBack)
			s.Active, s.Trial = t.From, nil
		}
	}
	if err := s.save(dir); err != nil {
		return Slot{}, err
	}
	return slotOf(dir, s), nil
}

func slotOf(dir string, s *state) Slot {
	sd := filepath.Join(dir, slotsDir, s.Active)
	sl := Slot{Name: s.Active, Version: s.running(), Dir: sd, Binary: filepath.Join(sd, BinaryFile)}
	if s.Trial != nil {
		sl.Trial, sl.Boots = true, s.Trial.Boots
	}
	return sl
}
