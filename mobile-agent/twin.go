package mobileagent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kogge-fleet/kogge/agent/twin"
	"github.com/kogge-fleet/kogge/mobile-agent/enforcement"
	"github.com/kogge-fleet/kogge/mobile-agent/shift"
)

// Twin configuration keys the app reads.
const (
	// TwinCatalogue holds a newer offence catalogue: the text of an
	// enforcement catalogue file, or that text in standard base64.
	TwinCatalogue = "catalogue"
	// TwinOfficers holds the officers who may log in: a list of objects
	// with id, name, crew and pin_hash (shift.Officer).
	TwinOfficers = "officers"
)

// ParseTwinCatalogue reads the catalogue of a twin value: text that
// starts with the catalogue header ("#"), or that text in base64.
func ParseTwinCatalogue(v any) (*enforcement.Catalogue, error) {
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("%s: want the catalogue file as text or base64", TwinCatalogue)
	}
	b := []byte(s)
	if t := strings.TrimSpace(s); !strings.HasPrefix(t, "#") {
		var err error
		if b, err = base64.StdEncoding.DecodeString(t); err != nil {
			return nil, fmt.Errorf("%s: neither a catalogue file (it starts with its # header) nor base64: %v", TwinCatalogue, err)
		}
	}
	if len(b) > enforcement.MaxCatalogueSize {
		return nil, fmt.Errorf("%s: %d bytes, at most %d", TwinCatalogue, len(b), enforcement.MaxCatalogueSize)
	}
	cat, err := enforcement.ParseCatalogue(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", TwinCatalogue, err)
	}
	return cat, nil
}

// ParseTwinOfficers reads the officers of a twin value.
func ParseTwinOfficers(v any) ([]shift.Officer, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", TwinOfficers, err)
	}
	var out []shift.Officer
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("%s: want a list of {id, name, crew, pin_hash} objects: %v", TwinOfficers, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: the list is empty; leave the key out to keep the provisioned officers", TwinOfficers)
	}
	if err := shift.CheckOfficers(out); err != nil {
		return nil, fmt.Errorf("%s: %w", TwinOfficers, err)
	}
	return out, nil
}

// checkTwin validates the app's keys of a desired configuration. An older
// catalogue is no error: it is ignored when applied.
func (a *App) checkTwin(values map[string]any) error {
	var errs []error
	if v, ok := values[TwinCatalogue]; ok {
		if _, err := ParseTwinCatalogue(v); err != nil {
			errs = append(errs, err)
		}
	}
	if v, ok := values[TwinOfficers]; ok {
		if _, err := ParseTwinOfficers(v); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// applyTwin takes the app's keys of a configuration into use, then calls
// the embedding program's hook.
func (a *App) applyTwin(next func(twin.Config) error) func(twin.Config) error {
	return func(c twin.Config) error {
		if v, ok := c.Values[TwinCatalogue]; ok {
			cat, err := ParseTwinCatalogue(v)
			if err != nil {
				return err
			}
			switch err := a.issuer.UpdateCatalogue(cat.Bytes()); {
			case errors.Is(err, enforcement.ErrNotNewer):
				a.log.Debug("the twin's catalogue is not newer than the one in use", "twin", cat.Version(),
					"in-use", a.issuer.Catalogue().Version())
			case err != nil:
				return err
			default:
				a.log.Info("offence catalogue updated", "version", cat.Version(), "entries", cat.Len())
				ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
				err := a.st.PutValue(ctx, keyCatalogue, cat.Bytes())
				cancel()
				if err != nil {
					// In use now; the twin applies it again at the next start.
					a.log.Warn("cannot store the updated catalogue", "err", err)
				}
				a.changed()
			}
		}
		officers := a.cfg.Officers
		if v, ok := c.Values[TwinOfficers]; ok {
			var err error
			if officers, err = ParseTwinOfficers(v); err != nil {
				return err
			}
		}
		if !slices.Equal(officers, a.currentOfficers()) {
			if err := a.setOfficers(officers); err != nil {
				return err
			}
			a.mu.Lock()
			a.officers = slices.Clone(officers)
			a.mu.Unlock()
			a.changed()
		}
		if next != nil {
			return next(c)
		}
		return nil
	}
}

// currentOfficers are the officers in use.
func (a *App) currentOfficers() []shift.Officer {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.officers == nil {
		return a.cfg.Officers
	}
	return a.officers
}

// loadCatalogue returns the catalogue stored by an earlier twin update if
// it is newer than the embedded one, else the embedded one.
func (a *App) loadCatalogue(ctx context.Context) (*enforcement.Catalogue, error) {
	cat, err := enforcement.EmbeddedCatalogue()
	if err != nil {
		return nil, fmt.Errorf("mobile app: embedded catalogue: %w", err)
	}
	b, ok, err := a.st.GetValue(ctx, keyCatalogue)
	if err != nil {
		return nil, fmt.Errorf("mobile app: stored catalogue: %w", err)
	}
	if !ok {
		return cat, nil
	}
	switch next, err := cat.Update(b); {
	case errors.Is(err, enforcement.ErrNotNewer):
		return cat, nil // the software brought a newer one
	case err != nil:
		a.log.Warn("the stored catalogue cannot be read; using the embedded one", "err", err)
		return cat, nil
	default:
		return next, nil
	}
}
