package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/audit"
	"github.com/kogge-fleet/kogge/fleet-server/commands"
	"github.com/kogge-fleet/kogge/fleet-server/delivery"
	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/retention"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/fleet-server/twin"
)

// Registry is what the API needs of fleet-server/registry.
type Registry interface {
	CreateGroup(ctx context.Context, id, name string) (registry.Group, error)
	Groups(ctx context.Context) ([]registry.Group, error)
	Group(ctx context.Context, id string) (registry.Group, error)
	RenameGroup(ctx context.Context, id, name string) (registry.Group, error)
	DeleteGroup(ctx context.Context, id string) error
	CreateCode(ctx context.Context, group string, o registry.CodeOptions) (registry.NewCode, error)
	Codes(ctx context.Context, group string) ([]registry.Code, error)
	RevokeCode(ctx context.Context, id string) error
	Devices(ctx context.Context, f registry.DeviceFilter) ([]registry.Device, error)
	Device(ctx context.Context, id string) (registry.Device, error)
	RevokeDevice(ctx context.Context, id, reason string) error
	CAFingerprint() string
}

// Records is what the API reads of the ingested records (fleet-server/store).
type Records interface {
	Records(ctx context.Context, f store.RecordFilter) ([]store.Record, error)
	Record(ctx context.Context, device string, id uuid.UUID) (store.Record, error)
	DeviceSync(ctx context.Context, device string) (store.DeviceSync, error)
}

// Presence is what the API reads of presence and health (fleet-server/store).
type Presence interface {
	Presence(ctx context.Context, device string) (store.Presence, error)
	Presences(ctx context.Context, after string, limit int, onlineOnly bool) ([]store.Presence, error)
	LatestHealth(ctx context.Context, device string) (store.Health, error)
	HealthHistory(ctx context.Context, f store.HealthFilter) ([]store.Health, error)
}

// Commands is what the API needs of fleet-server/commands.
type Commands interface {
	Send(ctx context.Context, device, name string, args map[string]string, ttl time.Duration) (store.Command, error)
	SendGroup(ctx context.Context, group, name string, args map[string]string, ttl time.Duration) (uuid.UUID, []store.Command, error)
	Command(ctx context.Context, id uuid.UUID) (store.Command, error)
	History(ctx context.Context, f store.CommandFilter) ([]store.Command, error)
	Fanout(ctx context.Context, id uuid.UUID) ([]store.Command, error)
}

// Twin is what the API needs of fleet-server/twin.
type Twin interface {
	Group(ctx context.Context, group string) (map[string]any, uint64, error)
	SetGroup(ctx context.Context, group string, config map[string]any) (uint64, error)
	SetDevice(ctx context.Context, device string, override map[string]any) error
	Device(ctx context.Context, device string) (twin.View, error)
}

// Audit is what the API needs of fleet-server/audit.
type Audit interface {
	Record(ctx context.Context, actor, action, target string, details map[string]any) (audit.Entry, error)
	List(ctx context.Context, f audit.Filter) ([]audit.Entry, error)
	Verify(ctx context.Context) (int, error)
}

// Deliveries is what the API needs of fleet-server/delivery.
type Deliveries interface {
	Deliveries(ctx context.Context, f store.DeliveryFilter) ([]store.Delivery, error)
	Inspect(ctx context.Context, id uuid.UUID) (delivery.Info, error)
	Stats(ctx context.Context) ([]store.OfficeStats, error)
	Replay(ctx context.Context, id uuid.UUID, actor string) (store.Delivery, error)
	Discard(ctx context.Context, id uuid.UUID, reason, actor string) (store.Delivery, error)
}

// Erasure is what the API needs of fleet-server/retention.
type Erasure interface {
	Erase(ctx context.Context, req retention.Request) (retention.ErasureResult, error)
}

// BridgeCerts is what the API needs of fleet-server/registry for bridges.
type BridgeCerts interface {
	IssueBridgeCertificate(ctx context.Context, office string, csr []byte) (registry.BridgeCertificate, error)
	BridgeCertificates(ctx context.Context, office string) ([]registry.BridgeCertificate, error)
	RevokeBridgeCertificate(ctx context.Context, serial string) (registry.BridgeCertificate, error)
}

// Services are the components the API serves from. All are required.
type Services struct {
	Registry    Registry
	Records     Records
	Presence    Presence
	Commands    Commands
	Twin        Twin
	Audit       Audit
	Deliveries  Deliveries
	Erasure     Erasure
	BridgeCerts BridgeCerts
	// Rollouts is optional: without it the artifact and rollout
	// endpoints are not served (see rollouts.go).
	Rollouts Rollouts
}

func (s Services) validate() error {
	var missing []string
	if s.Registry == nil {
		missing = append(missing, "registry")
	}
	if s.Records == nil {
		missing = append(missing, "records")
	}
	if s.Presence == nil {
		missing = append(missing, "presence")
	}
	if s.Commands == nil {
		missing = append(missing, "commands")
	}
	if s.Twin == nil {
		missing = append(missing, "twin")
	}
	if s.Audit == nil {
		missing = append(missing, "audit")
	}
	if s.Deliveries == nil {
		missing = append(missing, "deliveries")
	}
	if s.Erasure == nil {
		missing = append(missing, "erasure")
	}
	if s.BridgeCerts == nil {
		missing = append(missing, "bridge certificates")
	}
	if len(missing) > 0 {
		return errors.New("api: services missing: " + strings.Join(missing, ", "))
	}
	return nil
}

func (h *Handler) registerRoutes() {
	h.handle("GET "+Prefix+"/groups", h.listGroups)
	h.handle("POST "+Prefix+"/groups", h.createGroup)
	h.handle("GET "+Prefix+"/groups/{group}", h.showGroup)
	h.handle("PATCH "+Prefix+"/groups/{group}", h.renameGroup)
	h.handle("DELETE "+Prefix+"/groups/{group}", h.deleteGroup)

	h.handle("GET "+Prefix+"/enroll-codes", h.listCodes)
	h.handle("POST "+Prefix+"/enroll-codes", h.createCode)
	h.handle("POST "+Prefix+"/enroll-codes/{code}/revoke", h.revokeCode)

	h.handle("GET "+Prefix+"/devices", h.listDevices)
	h.handle("GET "+Prefix+"/devices/{device}", h.showDevice)
	h.handle("POST "+Prefix+"/devices/{device}/revoke", h.revokeDevice)

	h.handle("GET "+Prefix+"/presence", h.listPresence)
	h.handle("GET "+Prefix+"/devices/{device}/health", h.deviceHealth)

	h.handle("GET "+Prefix+"/groups/{group}/twin", h.showGroupTwin)
	h.handle("PUT "+Prefix+"/groups/{group}/twin", h.setGroupTwin)
	h.handle("GET "+Prefix+"/devices/{device}/twin", h.showDeviceTwin)
	h.handle("GET "+Prefix+"/devices/{device}/twin/override", h.showOverride)
	h.handle("PUT "+Prefix+"/devices/{device}/twin/override", h.setOverride)
	h.handle("DELETE "+Prefix+"/devices/{device}/twin/override", h.deleteOverride)

	h.handle("POST "+Prefix+"/commands", h.sendCommand)
	h.handle("GET "+Prefix+"/commands/{command}", h.showCommand)
	h.handle("GET "+Prefix+"/fanouts/{fanout}", h.showFanout)
	h.handle("GET "+Prefix+"/devices/{device}/commands", h.deviceCommands)

	h.handle("GET "+Prefix+"/records", h.listRecords)
	h.handle("GET "+Prefix+"/devices/{device}/records/{record}", h.showRecord)

	h.handle("GET "+Prefix+"/deliveries", h.listDeliveries)
	h.handle("GET "+Prefix+"/queues", h.deliveryStats)
	h.handle("GET "+Prefix+"/deliveries/{record}", h.showDelivery)
	h.handle("GET "+Prefix+"/dead-letters", h.listDeadLetters)
	h.handle("GET "+Prefix+"/dead-letters/{record}", h.showDeadLetter)
	h.handle("POST "+Prefix+"/dead-letters/{record}/replay", h.replayDeadLetter)
	h.handle("POST "+Prefix+"/dead-letters/{record}/discard", h.discardDeadLetter)

	h.handle("POST "+Prefix+"/erasures", h.erase)

	h.handle("GET "+Prefix+"/audit", h.listAudit)
	h.handle("POST "+Prefix+"/audit/verify", h.verifyAudit)

	h.handle("GET "+Prefix+"/bridge-certificates", h.listBridgeCerts)
	h.handle("POST "+Prefix+"/bridge-certificates", h.issueBridgeCert)
	h.handle("POST "+Prefix+"/bridge-certificates/{serial}/revoke", h.revokeBridgeCert)

	if h.svc.Rollouts != nil {
		h.registerRollouts()
	}
}

// mapError turns the errors of the services into HTTP errors. Their messages
// are written for people and name no internals, so they are passed on.
func mapError(err error) error {
	var he *httpError
	if errors.As(err, &he) {
		return he
	}
	status := 0
	switch {
	case errors.Is(err, registry.ErrNotFound), errors.Is(err, store.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, registry.ErrExists), errors.Is(err, registry.ErrGroupNotEmpty),
		errors.Is(err, registry.ErrCodeUsed):
		status = http.StatusConflict
	case errors.Is(err, registry.ErrInvalid), errors.Is(err, commands.ErrInvalid), errors.Is(err, twin.ErrInvalid),
		errors.Is(err, delivery.ErrInvalid), errors.Is(err, retention.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, delivery.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, delivery.ErrNotDeadLetter):
		status = http.StatusConflict
	case errors.Is(err, store.ErrDeviceRevoked):
		status = http.StatusConflict
		return &httpError{status: status, msg: "the device is revoked; it receives nothing any more"}
	}
	if status == 0 {
		return err
	}
	return &httpError{status: status, msg: err.Error()}
}
