package rollout

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol/artifact"
)

// Rollout states.
const (
	Running   = "running"
	Paused    = "paused"
	Aborting  = "aborting"
	Aborted   = "aborted"
	Succeeded = "succeeded"
)

// RolloutStates lists the rollout states.
var RolloutStates = []string{Running, Paused, Aborting, Aborted, Succeeded}

// Device states in a rollout.
const (
	// DevPending: its wave has not started.
	DevPending = "pending"
	// DevWaiting: its wave runs, but it waits (maintenance window, unsent
	// captures); Reason says for what.
	DevWaiting = "waiting"
	// DevSent: the update command is queued for it.
	DevSent        = "sent"
	DevDownloading = artifact.ReportDownloading
	DevInstalling  = artifact.ReportInstalling
	DevSucceeded   = artifact.ReportSucceeded
	// DevFailed: it refused the update or failed before the switch, or did
	// not report in time.
	DevFailed = artifact.ReportFailed
	// DevRolledBack: it went back to its previous version (its health
	// check, a crash loop, or the rollout's abort).
	DevRolledBack = artifact.ReportRolledBack
	// DevCancelled: the rollout was aborted before it installed.
	DevCancelled = artifact.ReportCancelled
	// DevRollingBack: the rollout was aborted; it was asked to go back.
	DevRollingBack = "rolling-back"
	// DevSkipped: revoked before it got the update.
	DevSkipped = "skipped"
)

// DeviceStates lists the device states in a rollout.
var DeviceStates = []string{DevPending, DevWaiting, DevSent, DevDownloading, DevInstalling, DevSucceeded, DevFailed,
	DevRolledBack, DevCancelled, DevRollingBack, DevSkipped}

// inFlight are the states of a device that has its command and no outcome.
func inFlight(st string) bool {
	return st == DevSent || st == DevDownloading || st == DevInstalling
}

// Defaults of a rollout's settings.
const (
	DefaultSuccessThreshold = 0.95
	DefaultErrorThreshold   = 0.05
	DefaultSoak             = 10 * time.Minute
	// MaxTargets bounds the devices of one rollout.
	MaxTargets = 100_000
)

// Target selects a rollout's devices: those of Group (all groups when
// empty), narrowed by the other fields that are set. Revoked devices are
// never targeted.
type Target struct {
	Group string `json:"group,omitempty"`
	// Devices names the devices.
	Devices []string `json:"devices,omitempty"`
	// Model keeps devices whose model contains it.
	Model string `json:"model,omitempty"`
	// Software keeps devices that run exactly this version.
	Software string `json:"software,omitempty"`
}

// Duration is a time.Duration that travels as text ("10m").
type Duration time.Duration

// MarshalText renders the duration as time.Duration does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a duration such as 10m or 1h30m.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Settings are how a rollout proceeds.
type Settings struct {
	// Waves are the cumulative wave sizes as given; Sizes the device
	// counts they came to.
	Waves []string `json:"waves"`
	Sizes []int    `json:"sizes"`
	// SuccessThreshold is the share of a wave's devices that must succeed
	// before its soak starts.
	SuccessThreshold float64 `json:"success_threshold"`
	// ErrorThreshold is the share of failed devices, among those of the
	// waves so far, that aborts the rollout.
	ErrorThreshold float64 `json:"error_threshold"`
	// Soak is how long a ready wave must stay healthy before the next.
	Soak Duration `json:"soak"`
	// Window is the daily maintenance window ("always" for none).
	Window string `json:"window"`
	// UpdateWithUnsent lets devices update with captures not yet
	// delivered.
	UpdateWithUnsent bool `json:"update_with_unsent"`
	// AllowDowngrade lets devices install the artifact even where it is
	// older than what they run: an explicit rollback version.
	AllowDowngrade bool `json:"allow_downgrade"`
}

// Spec asks for a rollout. Nil pointers and empty fields get defaults.
type Spec struct {
	Name     string
	Artifact uuid.UUID
	Target   Target
	// Waves default to DefaultWaves.
	Waves            []string
	SuccessThreshold *float64
	ErrorThreshold   *float64
	Soak             *time.Duration
	// Window defaults to the kiosk window for artifacts of the kiosk app,
	// else always.
	Window           string
	UpdateWithUnsent bool
	AllowDowngrade   bool
}

// Rollout is a rollout with its progress.
type Rollout struct {
	ID       uuid.UUID `json:"id"`
	Name     string    `json:"name"`
	Artifact Artifact  `json:"artifact"`
	Target   Target    `json:"target"`
	Settings Settings  `json:"settings"`
	State    string    `json:"state"`
	// Wave is the current wave, from 1.
	Wave  int            `json:"wave"`
	Waves []WaveProgress `json:"waves"`
	// Counts are the devices per state; Total all of them.
	Counts     map[string]int `json:"counts"`
	Total      int            `json:"total"`
	Reason     string         `json:"reason,omitempty"`
	CreatedAt  time.Time      `json:"created_at"`
	CreatedBy  string         `json:"created_by"`
	UpdatedAt  time.Time      `json:"updated_at"`
	FinishedAt time.Time      `json:"finished_at,omitzero"`
	// waveStartedAt and waveReadyAt drive the scheduler.
	waveStartedAt, waveReadyAt int64
}

// Finished reports whether the rollout has ended.
func (r Rollout) Finished() bool { return r.State == Aborted || r.State == Succeeded }

// WaveProgress is one wave of a rollout.
type WaveProgress struct {
	// Index counts from 1.
	Index int `json:"index"`
	// Devices are the wave's own devices; Cumulative with the earlier
	// waves'.
	Devices    int `json:"devices"`
	Cumulative int `json:"cumulative"`
	Succeeded  int `json:"succeeded"`
	Failed     int `json:"failed"`
	InProgress int `json:"in_progress"`
	// StartedAt: its devices got their commands; ReadyAt: it met the
	// success threshold (the soak began); DoneAt: the next wave started
	// or the rollout ended.
	StartedAt time.Time `json:"started_at,omitzero"`
	ReadyAt   time.Time `json:"ready_at,omitzero"`
	DoneAt    time.Time `json:"done_at,omitzero"`
}

// Device is one device's progress in a rollout.
type Device struct {
	Device string `json:"device"`
	// Wave counts from 1.
	Wave        int       `json:"wave"`
	State       string    `json:"state"`
	FromVersion string    `json:"from_version,omitempty"`
	Running     string    `json:"running,omitempty"`
	Progress    int       `json:"progress,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	UpdatedAt   time.Time `json:"updated_at"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`

	position  int
	commandID string
	reportSeq int64
}

// Event is something that happened to a rollout.
type Event struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Wave    int       `json:"wave"`
	Message string    `json:"message"`
}

// Event kinds.
const (
	EventCreated     = "created"
	EventWaveStarted = "wave-started"
	EventWaveReady   = "wave-ready"
	EventWaveDone    = "wave-done"
	EventSoakReset   = "soak-reset"
	EventPaused      = "paused"
	EventResumed     = "resumed"
	EventAborting    = "aborting"
	EventAborted     = "aborted"
	EventSucceeded   = "succeeded"
)

func ms(t int64) time.Time {
	if t == 0 {
		return time.Time{}
	}
	return time.UnixMilli(t).UTC()
}

// Create starts a rollout of spec, audited as actor's. Its devices are
// fixed now, in a random order spread by the rollout's id, and its first
// wave starts at the scheduler's next tick.
func (s *Service) Create(ctx context.Context, spec Spec, actor string) (Rollout, error) {
	a, err := s.Artifact(ctx, spec.Artifact)
	if err != nil {
		return Rollout{}, err
	}
	set, err := s.settings(spec, a)
	if err != nil {
		return Rollout{}, err
	}
	name := strings.TrimSpace(spec.Name)
	if name == "" {
		name = a.Name + " " + a.Version
	}
	if len(name) > 200 {
		return Rollout{}, fmt.Errorf("%w: name of %d bytes, at most 200", ErrInvalid, len(name))
	}
	devices, err := s.targets(ctx, spec.Target)
	if err != nil {
		return Rollout{}, err
	}
	if len(devices) == 0 {
		return Rollout{}, fmt.Errorf("%w: the target selects no device", ErrInvalid)
	}
	waves, _ := ParseWaves(set.Waves)
	set.Sizes = Sizes(waves, len(devices))
	id := uuid.Must(uuid.NewV7())
	order(id, devices)
	target, _ := json.Marshal(spec.Target)
	settings, _ := json.Marshal(set)
	now := s.now().UnixMilli()
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		busy, err := s.busyDevices(ctx, tx, devices)
		if err != nil {
			return err
		}
		if len(busy) > 0 {
			return fmt.Errorf("%w: %d of the devices are in a rollout that has not ended (e.g. %s in %s); wait for it or abort it",
				ErrConflict, len(busy), busy[0][0], busy[0][1])
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO rollouts (id, name, artifact_id, target, settings, state, wave, wave_started_at,
			created_at, created_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 0, 0, $7, $8, $7)`,
			id.String(), name, a.ID.String(), string(target), string(settings), Running, now, actor); err != nil {
			return err
		}
		wave := 0
		for i, d := range devices {
			for i >= set.Sizes[wave] {
				wave++
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO rollout_devices (rollout_id, device_id, wave, position, state, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6)`, id.String(), d, wave, i, DevPending, now); err != nil {
				return err
			}
		}
		return addEvent(ctx, tx, id, now, EventCreated, 0, fmt.Sprintf("%s %s for %d devices in %d waves (%s)",
			a.Name, a.Version, len(devices), len(set.Sizes), strings.Join(intStrings(set.Sizes), ", ")))
	})
	if err != nil {
		return Rollout{}, err
	}
	if err := s.record(ctx, actor, "rollout.create", "rollout:"+id.String(), map[string]any{
		"artifact": a.ID.String(), "version": a.Version, "devices": len(devices), "waves": set.Sizes, "target": spec.Target,
		"window": set.Window, "soak": time.Duration(set.Soak).String(),
	}); err != nil {
		return Rollout{}, err
	}
	s.log.Info("rollout created", "rollout", id, "version", a.Version, "devices", len(devices), "waves", set.Sizes)
	s.Poke()
	return s.Rollout(ctx, id)
}

func intStrings(ns []int) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = fmt.Sprint(n)
	}
	return out
}

// settings fills in and checks a spec's settings.
func (s *Service) settings(spec Spec, a Artifact) (Settings, error) {
	set := Settings{Waves: spec.Waves, SuccessThreshold: DefaultSuccessThreshold, ErrorThreshold: DefaultErrorThreshold,
		Soak: Duration(DefaultSoak), Window: spec.Window, UpdateWithUnsent: spec.UpdateWithUnsent, AllowDowngrade: spec.AllowDowngrade}
	if len(set.Waves) == 0 {
		set.Waves = DefaultWaves
	}
	if _, err := ParseWaves(set.Waves); err != nil {
		return set, err
	}
	if spec.SuccessThreshold != nil {
		set.SuccessThreshold = *spec.SuccessThreshold
	}
	if spec.ErrorThreshold != nil {
		set.ErrorThreshold = *spec.ErrorThreshold
	}
	if spec.Soak != nil {
		set.Soak = Duration(*spec.Soak)
	}
	if !(set.SuccessThreshold > 0 && set.SuccessThreshold <= 1) {
		return set, fmt.Errorf("%w: success threshold %v: more than 0 and at most 1", ErrInvalid, set.SuccessThreshold)
	}
	if !(set.ErrorThreshold >= 0 && set.ErrorThreshold < 1) {
		return set, fmt.Errorf("%w: error threshold %v: at least 0 (any failure aborts) and less than 1", ErrInvalid, set.ErrorThreshold)
	}
	if set.Soak < 0 || time.Duration(set.Soak) > 30*24*time.Hour {
		return set, fmt.Errorf("%w: soak %v: 0 to 30 days", ErrInvalid, time.Duration(set.Soak))
	}
	if set.Window == "" {
		set.Window = Always
		if slices.Contains(a.Apps, "kiosk") {
			set.Window = s.opts.KioskWindow
		}
	}
	w, err := ParseWindow(set.Window)
	if err != nil {
		return set, err
	}
	set.Window = w.String()
	return set, nil
}

// targets lists the ids of the devices a target selects.
func (s *Service) targets(ctx context.Context, t Target) ([]string, error) {
	if len(t.Devices) > MaxTargets {
		return nil, fmt.Errorf("%w: %d devices named, at most %d", ErrInvalid, len(t.Devices), MaxTargets)
	}
	if t.Group != "" {
		if _, err := s.db.Group(ctx, t.Group); errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("%w: no group %q", ErrInvalid, t.Group)
		} else if err != nil {
			return nil, err
		}
	}
	named, missing := map[string]bool{}, map[string]bool{}
	for _, d := range t.Devices {
		named[d], missing[d] = true, true
	}
	var out []string
	after := ""
	for range MaxTargets/1000 + 1 {
		devs, err := s.db.Devices(ctx, store.DeviceFilter{GroupID: t.Group, After: after, Limit: 1000})
		if err != nil {
			return nil, err
		}
		for _, d := range devs {
			if d.RevokedAt != 0 || (len(named) > 0 && !named[d.ID]) ||
				(t.Model != "" && !strings.Contains(strings.ToLower(d.Model), strings.ToLower(t.Model))) {
				continue
			}
			if t.Software != "" && s.running(ctx, d) != t.Software {
				continue
			}
			delete(missing, d.ID)
			out = append(out, d.ID)
		}
		if len(devs) < 1000 {
			break
		}
		after = devs[len(devs)-1].ID
	}
	if len(out) > MaxTargets {
		return nil, fmt.Errorf("%w: the target selects %d devices, at most %d", ErrInvalid, len(out), MaxTargets)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: devices not found, revoked or outside the target: %s", ErrInvalid,
			strings.Join(slices.Sorted(maps.Keys(missing)), ", "))
	}
	return out, nil
}

// running is the version a device runs as the server knows it: from its
// last heartbeat, else its presence, else its inventory.
func (s *Service) running(ctx context.Context, d store.Device) string {
	if h, err := s.db.LatestHealth(ctx, d.ID); err == nil && h.Heartbeat.Software != "" {
		return h.Heartbeat.Software
	}
	if p, err := s.db.Presence(ctx, d.ID); err == nil && p.Software != "" {
		return p.Software
	}
	return d.SoftwareVersion
}

// order shuffles the devices by a hash of the rollout's id and their own,
// so that the waves spread over groups and locations, the same way every
// time for one rollout.
func order(id uuid.UUID, devices []string) {
	key := func(d string) uint64 {
		h := sha256.Sum256(append(id[:], d...))
		return binary.BigEndian.Uint64(h[:8])
	}
	sort.Slice(devices, func(i, j int) bool { return key(devices[i]) < key(devices[j]) })
}

// busyDevices returns [device, rollout] pairs of devices in rollouts that
// have not ended.
func (s *Service) busyDevices(ctx context.Context, tx *sql.Tx, devices []string) ([][2]string, error) {
	want := make(map[string]bool, len(devices))
	for _, d := range devices {
		want[d] = true
	}
	rows, err := tx.QueryContext(ctx, `SELECT d.device_id, d.rollout_id FROM rollout_devices d JOIN rollouts r ON r.id = d.rollout_id
		WHERE r.state IN ($1, $2, $3) ORDER BY d.device_id`, Running, Paused, Aborting)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var d, r string
		if err := rows.Scan(&d, &r); err != nil {
			return nil, err
		}
		if want[d] {
			out = append(out, [2]string{d, r})
		}
	}
	return out, rows.Err()
}

func addEvent(ctx context.Context, tx *sql.Tx, rollout uuid.UUID, at int64, kind string, wave int, msg string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO rollout_events (id, rollout_id, at, kind, wave, message) VALUES ($1, $2, $3, $4, $5, $6)`,
		uuid.Must(uuid.NewV7()).String(), rollout.String(), at, kind, wave, msg)
	return err
}

const rolloutCols = `id, name, artifact_id, target, settings, state, wave, wave_started_at, wave_ready_at, reason, created_at, created_by, updated_at, finished_at`

func scanRollout(row interface{ Scan(...any) error }) (Rollout, uuid.UUID, error) {
	var r Rollout
	var id, art, target, settings string
	var created, updated, finished int64
	if err := row.Scan(&id, &r.Name, &art, &target, &settings, &r.State, &r.Wave, &r.waveStartedAt, &r.waveReadyAt, &r.Reason,
		&created, &r.CreatedBy, &updated, &finished); err != nil {
		return Rollout{}, uuid.Nil, err
	}
	var errs []error
	var err error
	r.ID, err = uuid.Parse(id)
	errs = append(errs, err)
	artID, err := uuid.Parse(art)
	errs = append(errs, err, json.Unmarshal([]byte(target), &r.Target), json.Unmarshal([]byte(settings), &r.Settings))
	if err := errors.Join(errs...); err != nil {
		return Rollout{}, uuid.Nil, fmt.Errorf("rollout %s: %w", id, err)
	}
	r.CreatedAt, r.UpdatedAt, r.FinishedAt = ms(created), ms(updated), ms(finished)
	return r, artID, nil
}

// RolloutFilter selects rollouts: of the states given (all when empty),
// newest first, at most Limit (100, at most 1000).
type RolloutFilter struct {
	States []string
	Limit  int
}

// Rollouts lists rollouts with their progress.
func (s *Service) Rollouts(ctx context.Context, f RolloutFilter) ([]Rollout, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	for _, st := range f.States {
		if !slices.Contains(RolloutStates, st) {
			return nil, fmt.Errorf("%w: state %q: one of %s", ErrInvalid, st, strings.Join(RolloutStates, ", "))
		}
	}
	q := `SELECT ` + rolloutCols + ` FROM rollouts`
	var args []any
	if len(f.States) > 0 {
		ph := make([]string, len(f.States))
		for i, st := range f.States {
			ph[i] = "$" + strconv.Itoa(i+1)
			args = append(args, st)
		}
		q += ` WHERE state IN (` + strings.Join(ph, ", ") + `)`
	}
	args = append(args, min(f.Limit, 1000))
	q += ` ORDER BY created_at DESC, id DESC LIMIT $` + strconv.Itoa(len(args))
	rows, err := s.db.Reader().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list rollouts: %w", err)
	}
	var list []Rollout
	var arts []uuid.UUID
	for rows.Next() {
		r, art, err := scanRollout(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		list, arts = append(list, r), append(arts, art)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	for i := range list {
		if err := s.fill(ctx, &list[i], arts[i]); err != nil {
			return nil, err
		}
	}
	return list, nil
}

// Rollout returns a rollout with its progress.
func (s *Service) Rollout(ctx context.Context, id uuid.UUID) (Rollout, error) {
	r, art, err := scanRollout(s.db.Reader().QueryRowContext(ctx, `SELECT `+rolloutCols+` FROM rollouts WHERE id = $1`, id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return Rollout{}, fmt.Errorf("%w: no rollout %s", ErrNotFound, id)
	}
	if err != nil {
		return Rollout{}, err
	}
	return r, s.fill(ctx, &r, art)
}

// fill adds the artifact, the counts and the waves' progress.
func (s *Service) fill(ctx context.Context, r *Rollout, art uuid.UUID) error {
	a, err := scanArtifact(s.db.Reader().QueryRowContext(ctx, `SELECT `+artifactCols+` FROM artifacts WHERE id = $1`, art.String()))
	if err != nil {
		return fmt.Errorf("rollout %s: artifact %s: %w", r.ID, art, err)
	}
	r.Artifact = a
	devs, err := s.devices(ctx, r.ID)
	if err != nil {
		return err
	}
	events, err := s.Events(ctx, r.ID)
	if err != nil {
		return err
	}
	progress(r, devs, events)
	return nil
}

// progress computes the counts and the waves of r from its devices and
// events.
func progress(r *Rollout, devs []Device, events []Event) {
	r.Counts = map[string]int{}
	for _, st := range DeviceStates {
		r.Counts[st] = 0
	}
	r.Total = len(devs)
	r.Waves = make([]WaveProgress, len(r.Settings.Sizes))
	prev := 0
	for i, n := range r.Settings.Sizes {
		r.Waves[i] = WaveProgress{Index: i + 1, Devices: n - prev, Cumulative: n}
		prev = n
	}
	for _, d := range devs {
		r.Counts[d.State]++
		if d.Wave < 1 || d.Wave > len(r.Waves) {
			continue
		}
		w := &r.Waves[d.Wave-1]
		switch {
		case d.State == DevSucceeded:
			w.Succeeded++
		case failedState(d.State):
			w.Failed++
		case inFlight(d.State) || d.State == DevRollingBack:
			w.InProgress++
		}
	}
	for _, e := range events {
		if e.Wave < 1 || e.Wave > len(r.Waves) {
			continue
		}
		w := &r.Waves[e.Wave-1]
		switch e.Kind {
		case EventWaveStarted:
			w.StartedAt = e.At
		case EventWaveReady:
			w.ReadyAt = e.At
		case EventWaveDone:
			w.DoneAt = e.At
		}
	}
	r.Wave++ // from 1 for people
}

// failedState reports whether a device state counts as a failure.
func failedState(st string) bool { return st == DevFailed || st == DevRolledBack }

// DeviceFilter selects a rollout's devices: of the states given (all when
// empty), in rollout order.
type DeviceFilter struct {
	States []string
}

// Devices lists a rollout's devices with their progress.
func (s *Service) Devices(ctx context.Context, id uuid.UUID, f DeviceFilter) ([]Device, error) {
	if _, err := s.Rollout(ctx, id); err != nil {
		return nil, err
	}
	for _, st := range f.States {
		if !slices.Contains(DeviceStates, st) {
			return nil, fmt.Errorf("%w: device state %q: one of %s", ErrInvalid, st, strings.Join(DeviceStates, ", "))
		}
	}
	devs, err := s.devices(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(f.States) > 0 {
		devs = slices.DeleteFunc(devs, func(d Device) bool { return !slices.Contains(f.States, d.State) })
	}
	return devs, nil
}

func (s *Service) devices(ctx context.Context, id uuid.UUID) ([]Device, error) {
	rows, err := s.db.Reader().QueryContext(ctx, `SELECT device_id, wave, position, state, from_version, running, progress, reason,
		command_id, report_seq, started_at, updated_at, finished_at FROM rollout_devices WHERE rollout_id = $1 ORDER BY position`, id.String())
	if err != nil {
		return nil, fmt.Errorf("list the devices of rollout %s: %w", id, err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		var d Device
		var started, updated, finished int64
		if err := rows.Scan(&d.Device, &d.Wave, &d.position, &d.State, &d.FromVersion, &d.Running, &d.Progress, &d.Reason,
			&d.commandID, &d.reportSeq, &started, &updated, &finished); err != nil {
			return nil, err
		}
		d.Wave++
		d.StartedAt, d.UpdatedAt, d.FinishedAt = ms(started), ms(updated), ms(finished)
		out = append(out, d)
	}
	return out, rows.Err()
}

// Events lists a rollout's events, oldest first.
func (s *Service) Events(ctx context.Context, id uuid.UUID) ([]Event, error) {
	rows, err := s.db.Reader().QueryContext(ctx, `SELECT at, kind, wave, message FROM rollout_events WHERE rollout_id = $1 ORDER BY id`, id.String())
	if err != nil {
		return nil, fmt.Errorf("list the events of rollout %s: %w", id, err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var at int64
		if err := rows.Scan(&at, &e.Kind, &e.Wave, &e.Message); err != nil {
			return nil, err
		}
		e.At = ms(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Pause stops a running rollout from updating more devices; devices that
// have their command carry on.
func (s *Service) Pause(ctx context.Context, id uuid.UUID, actor string) (Rollout, error) {
	return s.transition(ctx, id, actor, "rollout.pause", []string{Running}, Paused, EventPaused, "paused by "+actor, "")
}

// Resume lets a paused rollout go on.
func (s *Service) Resume(ctx context.Context, id uuid.UUID, actor string) (Rollout, error) {
	return s.transition(ctx, id, actor, "rollout.resume", []string{Paused}, Running, EventResumed, "resumed by "+actor, "")
}

// Abort ends a rollout: devices that did not install it are cancelled,
// the ones that did are sent back to their previous version.
func (s *Service) Abort(ctx context.Context, id uuid.UUID, reason, actor string) (Rollout, error) {
	if reason == "" {
		reason = "aborted by " + actor
	}
	if len(reason) > 1000 {
		return Rollout{}, fmt.Errorf("%w: reason of %d bytes, at most 1000", ErrInvalid, len(reason))
	}
	return s.transition(ctx, id, actor, "rollout.abort", []string{Running, Paused}, Aborting, EventAborting, reason, reason)
}

func (s *Service) transition(ctx context.Context, id uuid.UUID, actor, action string, from []string, to, event, msg, reason string) (Rollout, error) {
	r, err := s.Rollout(ctx, id)
	if err != nil {
		return Rollout{}, err
	}
	if !slices.Contains(from, r.State) {
		return Rollout{}, fmt.Errorf("%w: rollout %s is %s; %s needs it %s", ErrConflict, id, r.State,
			strings.TrimPrefix(action, "rollout."), strings.Join(from, " or "))
	}
	now := s.now().UnixMilli()
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE rollouts SET state = $1, reason = CASE WHEN $2 = '' THEN reason ELSE $2 END, updated_at = $3
			WHERE id = $4 AND state = $5`, to, reason, now, id.String(), r.State)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("%w: rollout %s changed meanwhile; look again", ErrConflict, id)
		}
		return addEvent(ctx, tx, id, now, event, r.Wave, msg)
	})
	if err != nil {
		return Rollout{}, err
	}
	if err := s.record(ctx, actor, action, "rollout:"+id.String(), map[string]any{"from": r.State, "to": to, "reason": reason}); err != nil {
		return Rollout{}, err
	}
	s.log.Info("rollout "+strings.TrimPrefix(action, "rollout."), "rollout", id, "actor", actor)
	s.Poke()
	return s.Rollout(ctx, id)
}

// ceilShare is how many of n devices a share needs: at least one.
func ceilShare(share float64, n int) int {
	return max(1, int(math.Ceil(share*float64(n)-1e-9)))
}
