package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
)

func registryHash(code string) []byte { h := sha256.Sum256([]byte(code)); return h[:] }

// registryBuild returns an Enroll build function for a device id.
func registryBuild(id, serial string) func(codeID, groupID string) (Device, DeviceCert, error) {
	return func(_, _ string) (Device, DeviceCert, error) {
		return Device{ID: id, CreatedAt: 1000, Model: "K1", Peripherals: "[]", InventoryAt: 1000},
			DeviceCert{Serial: serial, NotBefore: 1000, NotAfter: 9_000_000, CreatedAt: 1000}, nil
	}
}

func TestRegistryGroups(t *testing.T) {
	backends(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		if err := db.CreateGroup(ctx, Group{ID: "mitte", Name: "Bürgeramt Mitte kiosks", CreatedAt: 1}); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateGroup(ctx, Group{ID: "od", Name: "Ordnungsdienst handhelds", CreatedAt: 2}); err != nil {
			t.Fatal(err)
		}
		for _, g := range []Group{{ID: "mitte", Name: "other"}, {ID: "x", Name: "Ordnungsdienst handhelds"}} {
			if err := db.CreateGroup(ctx, g); !errors.Is(err, ErrGroupExists) {
				t.Errorf("CreateGroup(%+v) = %v, want ErrGroupExists", g, err)
			}
		}
		if err := db.RenameGroup(ctx, "od", "Bürgeramt Mitte kiosks"); !errors.Is(err, ErrGroupExists) {
			t.Errorf("rename onto a taken name: %v", err)
		}
		if err := db.RenameGroup(ctx, "nope", "x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("rename unknown: %v", err)
		}
		if err := db.RenameGroup(ctx, "od", "Ordnungsdienst Handhelds Nord"); err != nil {
			t.Fatal(err)
		}
		// A device in "mitte" blocks its deletion; the code of "od" goes with it.
		if err := db.CreateEnrollCode(ctx, EnrollCode{ID: "c1", Hash: registryHash("a"), GroupID: "mitte", CreatedAt: 1, ExpiresAt: 5000}); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateEnrollCode(ctx, EnrollCode{ID: "c2", Hash: registryHash("b"), GroupID: "od", CreatedAt: 1, ExpiresAt: 5000}); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateEnrollCode(ctx, EnrollCode{ID: "c3", Hash: registryHash("c"), GroupID: "none", CreatedAt: 1, ExpiresAt: 5000}); !errors.Is(err, ErrNotFound) {
			t.Errorf("code for unknown group: %v", err)
		}
		if _, _, err := db.Enroll(ctx, registryHash("a"), 2000, registryBuild("mitte-1", "01")); err != nil {
			t.Fatal(err)
		}
		gs, err := db.Groups(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := fmt.Sprint(gs)
		want := fmt.Sprint([]Group{{"mitte", "Bürgeramt Mitte kiosks", 1, 1}, {"od", "Ordnungsdienst Handhelds Nord", 2, 0}})
		if got != want {
			t.Errorf("Groups:\n got %s\nwant %s", got, want)
		}
		if err := db.DeleteGroup(ctx, "mitte"); !errors.Is(err, ErrGroupNotEmpty) {
			t.Errorf("delete non-empty group: %v", err)
		}
		if err := db.DeleteGroup(ctx, "od"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Group(ctx, "od"); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted group: %v", err)
		}
		if _, err := db.EnrollCode(ctx, "c2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("code of deleted group: %v", err)
		}
		if err := db.DeleteGroup(ctx, "od"); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete twice: %v", err)
		}
	})
}

func TestRegistryEnrollCodes(t *testing.T) {
	backends(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		if err := db.CreateGroup(ctx, Group{ID: "g", Name: "G", CreatedAt: 1}); err != nil {
			t.Fatal(err)
		}
		codes := []EnrollCode{
			{ID: "ok", Hash: registryHash("ok"), ExpiresAt: 5000},
			{ID: "expired", Hash: registryHash("expired"), ExpiresAt: 2000},
			{ID: "revoked", Hash: registryHash("revoked"), ExpiresAt: 5000},
			{ID: "taken", Hash: registryHash("taken"), ExpiresAt: 5000},
		}
		for _, c := range codes {
			c.GroupID, c.CreatedAt, c.Note = "g", 1, "for "+c.ID
			if err := db.CreateEnrollCode(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.RevokeEnrollCode(ctx, "revoked", 1500); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.Enroll(ctx, registryHash("ok"), 2000, registryBuild("d1", "aa")); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			code, device string
			want         error
		}{
			{"ok", "d2", ErrCodeUsed},
			{"expired", "d2", ErrCodeExpired}, // expires_at == now counts as expired
			{"revoked", "d2", ErrCodeRevoked},
			{"unknown", "d2", ErrCodeUnknown},
			{"taken", "d1", ErrDeviceExists},
		}
		for _, tt := range tests {
			if _, _, err := db.Enroll(ctx, registryHash(tt.code), 2000, registryBuild(tt.device, "bb")); !errors.Is(err, tt.want) {
				t.Errorf("Enroll(%s) = %v, want %v", tt.code, err, tt.want)
			}
		}
		// A refused enrollment leaves the code usable.
		taken, err := db.EnrollCode(ctx, "taken")
		if err != nil || taken.UsedAt != 0 || taken.DeviceID != "" {
			t.Errorf("code after a refused enrollment: %+v, %v", taken, err)
		}
		if err := db.RevokeEnrollCode(ctx, "ok", 3000); !errors.Is(err, ErrCodeUsed) {
			t.Errorf("revoke used code: %v", err)
		}
		if err := db.RevokeEnrollCode(ctx, "nope", 3000); !errors.Is(err, ErrNotFound) {
			t.Errorf("revoke unknown code: %v", err)
		}
		ok, err := db.EnrollCode(ctx, "ok")
		if err != nil {
			t.Fatal(err)
		}
		if ok.UsedAt != 2000 || ok.DeviceID != "d1" || ok.Note != "for ok" {
			t.Errorf("used code: %+v", ok)
		}
		all, err := db.EnrollCodes(ctx, "")
		if err != nil || len(all) != 4 {
			t.Errorf("EnrollCodes: %d codes, %v", len(all), err)
		}
		d, err := db.Device(ctx, "d1")
		if err != nil {
			t.Fatal(err)
		}
		if d.GroupID != "g" || d.EnrollCodeID != "ok" || d.Model != "K1" {
			t.Errorf("enrolled device: %+v", d)
		}
		certs, err := db.DeviceCerts(ctx, "d1")
		if err != nil || len(certs) != 1 || certs[0].Serial != "aa" || certs[0].DeviceID != "d1" {
			t.Errorf("certificates: %+v, %v", certs, err)
		}
	})
}

func TestRegistryConcurrentEnroll(t *testing.T) {
	backends(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		if err := db.CreateGroup(ctx, Group{ID: "g", Name: "G", CreatedAt: 1}); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateEnrollCode(ctx, EnrollCode{ID: "c", Hash: registryHash("c"), GroupID: "g", CreatedAt: 1, ExpiresAt: 5000}); err != nil {
			t.Fatal(err)
		}
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				_, _, errs[i] = db.Enroll(ctx, registryHash("c"), 2000, registryBuild(fmt.Sprintf("d%d", i), fmt.Sprintf("s%d", i)))
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrCodeUsed):
				t.Errorf("enrollment %d: %v, want ErrCodeUsed", i, err)
			}
		}
		if won != 1 {
			t.Errorf("%d enrollments won with one code, want 1", won)
		}
		devs, err := db.Devices(ctx, DeviceFilter{})
		if err != nil || len(devs) != 1 {
			t.Errorf("devices after concurrent enrollment: %d, %v", len(devs), err)
		}
	})
}

func TestRegistryDevices(t *testing.T) {
	backends(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		for _, g := range []string{"a", "b"} {
			if err := db.CreateGroup(ctx, Group{ID: g, Name: g, CreatedAt: 1}); err != nil {
				t.Fatal(err)
			}
		}
		for i, dev := range []string{"a-2", "a-1", "b-1"} {
			code := "code-" + dev
			if err := db.CreateEnrollCode(ctx, EnrollCode{ID: code, Hash: registryHash(code), GroupID: dev[:1], CreatedAt: 1, ExpiresAt: 5000}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := db.Enroll(ctx, registryHash(code), 2000, registryBuild(dev, fmt.Sprintf("%02x", i))); err != nil {
				t.Fatal(err)
			}
		}
		ids := func(f DeviceFilter) []string {
			ds, err := db.Devices(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, d := range ds {
				out = append(out, d.ID)
			}
			return out
		}
		for _, tt := range []struct {
			f    DeviceFilter
			want []string
		}{
			{DeviceFilter{}, []string{"a-1", "a-2", "b-1"}},
			{DeviceFilter{GroupID: "a"}, []string{"a-1", "a-2"}},
			{DeviceFilter{Limit: 2}, []string{"a-1", "a-2"}},
			{DeviceFilter{After: "a-2", Limit: 2}, []string{"b-1"}},
		} {
			if got := ids(tt.f); !slices.Equal(got, tt.want) {
				t.Errorf("Devices(%+v) = %v, want %v", tt.f, got, tt.want)
			}
		}

		// Last seen only rises; unknown ids are ignored.
		if err := db.TouchDevices(ctx, map[string]int64{"a-1": 5000, "b-1": 4000, "ghost": 1}); err != nil {
			t.Fatal(err)
		}
		if err := db.TouchDevices(ctx, map[string]int64{"a-1": 4500}); err != nil {
			t.Fatal(err)
		}
		inv := DeviceInventory{Model: "Kiosk K2", SerialNumber: "SN-7", SoftwareVersion: "1.4.2",
			Peripherals: `[{"name":"camera","kind":"camera"}]`, LocationLabel: "Rathaus EG"}
		if err := db.UpdateDeviceInventory(ctx, "a-1", inv, 6000); err != nil {
			t.Fatal(err)
		}
		if err := db.UpdateDeviceInventory(ctx, "ghost", inv, 6000); !errors.Is(err, ErrNotFound) {
			t.Errorf("inventory of unknown device: %v", err)
		}
		d, err := db.Device(ctx, "a-1")
		if err != nil {
			t.Fatal(err)
		}
		if d.LastSeen != 5000 || d.SoftwareVersion != "1.4.2" || d.Peripherals != inv.Peripherals || d.InventoryAt != 6000 || d.LocationLabel != "Rathaus EG" {
			t.Errorf("device after touch and inventory: %+v", d)
		}

		// Revocation.
		if err := db.AddDeviceCert(ctx, DeviceCert{Serial: "ff", DeviceID: "a-1", NotBefore: 1, NotAfter: 9_000_000, CreatedAt: 3000}); err != nil {
			t.Fatal(err)
		}
		if err := db.AddDeviceCert(ctx, DeviceCert{Serial: "fe", DeviceID: "ghost", NotAfter: 9_000_000}); !errors.Is(err, ErrNotFound) {
			t.Errorf("certificate for unknown device: %v", err)
		}
		if dev, err := db.RevokeDeviceCert(ctx, "02", 7000); err != nil || dev != "b-1" {
			t.Errorf("RevokeDeviceCert = %q, %v", dev, err)
		}
		if _, err := db.RevokeDeviceCert(ctx, "99", 7000); !errors.Is(err, ErrNotFound) {
			t.Errorf("revoke unknown certificate: %v", err)
		}
		for i, want := range []bool{true, false} {
			changed, err := db.RevokeDevice(ctx, "a-1", fmt.Sprintf("lost %d", i), int64(8000+i))
			if err != nil || changed != want {
				t.Errorf("RevokeDevice #%d = %v, %v; want %v", i, changed, err, want)
			}
		}
		if _, err := db.RevokeDevice(ctx, "ghost", "", 1); !errors.Is(err, ErrNotFound) {
			t.Errorf("revoke unknown device: %v", err)
		}
		if err := db.AddDeviceCert(ctx, DeviceCert{Serial: "fd", DeviceID: "a-1", NotAfter: 9_000_000}); !errors.Is(err, ErrDeviceRevoked) {
			t.Errorf("certificate for revoked device: %v", err)
		}
		d, err = db.Device(ctx, "a-1")
		if err != nil || d.RevokedAt != 8000 || d.RevokedReason != "lost 0" {
			t.Errorf("revoked device: %+v, %v", d, err)
		}
		devs, serials, err := db.Revocations(ctx, 2000)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(serials)
		if !slices.Equal(devs, []string{"a-1"}) || !slices.Equal(serials, []string{"01", "02", "ff"}) {
			t.Errorf("Revocations = %v, %v", devs, serials)
		}
		// Expired certificates drop out of the list.
		if _, serials, _ := db.Revocations(ctx, 9_000_000); len(serials) != 0 {
			t.Errorf("expired revoked serials still listed: %v", serials)
		}
	})
}

func TestSettingOrPut(t *testing.T) {
	backends(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		const n = 4
		got := make([][]byte, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { got[i], errs[i] = db.SettingOrPut(ctx, "ca", []byte{byte(i)}) })
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil || len(got[i]) != 1 || got[i][0] != got[0][0] {
				t.Fatalf("SettingOrPut results differ: %v, %v", got, errs)
			}
		}
		v, err := db.Setting(ctx, "ca")
		if err != nil || v[0] != got[0][0] {
			t.Errorf("stored %v, %v; returned %v", v, err, got[0])
		}
	})
}
