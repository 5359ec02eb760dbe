package artifact

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// The update contract between the fleet server and a device.
//
// The server starts an update with the command CommandUpdate (over MQTT,
// through the command queue, so that it reaches a device that is offline
// now) and undoes one with CommandRollback. The device fetches the signed
// manifest and the binary over HTTPS from the server's device endpoint,
// authenticated by its client certificate, and reports each step to it
// with a Report.
const (
	// CommandUpdate installs an artifact. Args: ArgRollout, ArgArtifact,
	// ArgVersion, and ArgAllowDowngrade when the rollout allows an older
	// version.
	CommandUpdate = "update"
	// CommandRollback leaves the version a rollout installed, back to the
	// version the device ran before (ArgTo), or cancels the rollout's
	// update if it is not installed yet. Args: ArgRollout, ArgVersion (the
	// rollout's version), ArgTo.
	CommandRollback = "update-rollback"

	ArgRollout        = "rollout"
	ArgArtifact       = "artifact"
	ArgVersion        = "version"
	ArgAllowDowngrade = "allow_downgrade"
	ArgTo             = "to"
)

// Paths of the device endpoint on the server's HTTPS listener (mutual TLS
// with the device's certificate).
const (
	// DevicePrefix is the root of the device endpoint.
	DevicePrefix = "/device/v1/"
	// ReportPath takes a Report (POST, JSON).
	ReportPath = "/device/v1/update-reports"
)

// BinaryPath is where a device downloads an artifact's binary (GET, with
// Range requests; the ETag is the quoted SHA-256).
func BinaryPath(artifact uuid.UUID) string { return "/device/v1/artifacts/" + artifact.String() }

// ManifestPath is where a device fetches an artifact's signed manifest.
func ManifestPath(artifact uuid.UUID) string { return BinaryPath(artifact) + "/manifest" }

// ETag is the entity tag of an artifact's binary.
func ETag(sha256hex string) string { return `"` + sha256hex + `"` }

// Report states: what a device says about its update of one rollout.
const (
	// ReportDownloading: the artifact is being fetched (Progress in
	// percent).
	ReportDownloading = "downloading"
	// ReportInstalling: installed beside the running version; the device
	// restarts into it and checks its health.
	ReportInstalling = "installing"
	// ReportSucceeded: the new version runs and passed its health check.
	ReportSucceeded = "succeeded"
	// ReportFailed: the update was refused or failed before the switch;
	// the old version runs on.
	ReportFailed = "failed"
	// ReportRolledBack: the device went back to the version it ran before:
	// on a failed health check, a crash loop, or the server's rollback.
	ReportRolledBack = "rolled-back"
	// ReportCancelled: the server's rollback arrived before the update was
	// installed.
	ReportCancelled = "cancelled"
)

// ReportStates lists the report states.
var ReportStates = []string{ReportDownloading, ReportInstalling, ReportSucceeded, ReportFailed, ReportRolledBack, ReportCancelled}

// MaxReportSize bounds a Report's JSON.
const MaxReportSize = 8 << 10

// Report is one step of a device's update, sent to ReportPath.
type Report struct {
	Rollout uuid.UUID `json:"rollout"`
	State   string    `json:"state"`
	// Version is the rollout's version.
	Version string `json:"version"`
	// Running is the version the device runs as it reports.
	Running string `json:"running"`
	// Progress is the part downloaded, in percent (downloading only).
	Progress int `json:"progress,omitempty"`
	// Reason says why, for failed, rolled-back and cancelled.
	Reason string `json:"reason,omitempty"`
	// At is the device's clock.
	At time.Time `json:"at"`
	// Seq orders a device's reports: it grows with every report.
	Seq uint64 `json:"seq"`
}

// Validate checks a report's fields.
func (r Report) Validate() error {
	if r.Rollout == uuid.Nil {
		return fmt.Errorf("%w: report without a rollout", ErrMalformed)
	}
	known := false
	for _, s := range ReportStates {
		known = known || s == r.State
	}
	if !known {
		return fmt.Errorf("%w: report state %q unknown", ErrMalformed, clip(r.State))
	}
	if r.Version == "" || len(r.Version) > 128 || len(r.Running) > 128 {
		return fmt.Errorf("%w: report versions: 1 to 128 bytes", ErrMalformed)
	}
	if r.Progress < 0 || r.Progress > 100 {
		return fmt.Errorf("%w: progress %d: 0 to 100", ErrMalformed, r.Progress)
	}
	if len(r.Reason) > 1024 {
		return fmt.Errorf("%w: reason of %d bytes, at most 1024", ErrMalformed, len(r.Reason))
	}
	return nil
}

// DecodeReport reads a Report strictly: at most MaxReportSize bytes, one
// JSON object, no unknown fields, valid fields.
func DecodeReport(b []byte) (Report, error) {
	var r Report
	if len(b) > MaxReportSize {
		return r, fmt.Errorf("%w: report of %d bytes, at most %d", ErrMalformed, len(b), MaxReportSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Report{}, fmt.Errorf("%w: report: %v", ErrMalformed, err)
	}
	if dec.More() {
		return Report{}, fmt.Errorf("%w: data after the report", ErrMalformed)
	}
	if err := r.Validate(); err != nil {
		return Report{}, err
	}
	return r, nil
}
