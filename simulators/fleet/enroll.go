package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/kogge-fleet/kogge/agent/enroll"
	"github.com/kogge-fleet/kogge/fleet-server/api/client"
)

// EnrollDevice enrolls a device as id in group the way a technician does:
// a one-time code from the admin API, then the device's own key and CSR to
// the server's HTTPS enrollment endpoint at enrollURL, pinning the fleet
// CA's fingerprint. The identity is kept in dir (see agent/enroll.Load).
func EnrollDevice(ctx context.Context, api *client.Client, enrollURL, dir, id, group string, inv enroll.Inventory) (*enroll.Identity, error) {
	code, err := api.CreateCode(ctx, client.CodeRequest{Group: group, TTL: time.Hour, Note: "kogge-sim " + id})
	if err != nil {
		return nil, fmt.Errorf("enrollment code for %s: %w", id, err)
	}
	ident, err := enroll.Enroll(ctx, dir, enroll.Request{
		Server: enrollURL, Code: code.Secret, CAFingerprint: code.CAFingerprint, DeviceID: id, Inventory: inv,
	}, enroll.Options{Timeout: 30 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("enroll %s: %w", id, err)
	}
	return ident, nil
}
