package mobileagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// maxPlaces is how many recent addresses the device offers.
const maxPlaces = 20

// Address is a street and house number, as entered for a notice or a
// report and offered again as a recent one.
type Address struct {
	Street      string    `json:"street"`
	HouseNumber string    `json:"house_number,omitempty"`
	Used        time.Time `json:"used"`
}

// String returns "Am Markt 21".
func (a Address) String() string { return joinAddress(a.Street, a.HouseNumber) }

// places keeps the recent addresses in the store values (an address is
// where a car stood or a road is damaged, not whose it was).
type places struct {
	vals Values
	mu   sync.Mutex
	list []Address
}

// Values is where the app keeps its lists between runs; the agent's store
// (*agent/store.Store) has these methods.
type Values interface {
	GetValue(ctx context.Context, key string) ([]byte, bool, error)
	PutValue(ctx context.Context, key string, value []byte) error
}

func openPlaces(ctx context.Context, vals Values) (*places, error) {
	p := &places{vals: vals}
	b, ok, err := vals.GetValue(ctx, keyPlaces)
	if err != nil {
		return nil, fmt.Errorf("recent addresses: %w", err)
	}
	if ok && len(b) > 0 {
		// A list that cannot be read is not worth failing the start for:
		// it starts empty and is written anew.
		if json.Unmarshal(b, &p.list) != nil {
			p.list = nil
		}
	}
	return p, nil
}

// Add puts an address first on the list.
func (p *places) Add(ctx context.Context, a Address, now time.Time) error {
	a.Street, a.HouseNumber, a.Used = strings.TrimSpace(a.Street), strings.TrimSpace(a.HouseNumber), now
	if a.Street == "" {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.list = slices.DeleteFunc(p.list, func(x Address) bool {
		return strings.EqualFold(x.Street, a.Street) && strings.EqualFold(x.HouseNumber, a.HouseNumber)
	})
	p.list = append([]Address{a}, p.list...)
	if len(p.list) > maxPlaces {
		p.list = p.list[:maxPlaces]
	}
	b, err := json.Marshal(p.list)
	if err != nil {
		return err
	}
	return p.vals.PutValue(ctx, keyPlaces, b)
}

// List returns the recent addresses, newest first.
func (p *places) List() []Address {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.list)
}

// RecentAddresses returns the addresses entered lately on this device,
// newest first, to be picked again.
func (a *App) RecentAddresses() []Address { return a.places.List() }

// joinAddress writes a street and house number.
func joinAddress(street, house string) string {
	if house == "" {
		return street
	}
	if street == "" {
		return ""
	}
	return street + " " + house
}

// checkAddress checks a street and house number as entered.
func checkAddress(street, house string) error {
	if street == "" {
		return errors.New("no street: enter it or pick a recent one")
	}
	if err := checkLine(street, 200); err != nil {
		return fmt.Errorf("street: %w", err)
	}
	if err := checkLine(house, 32); err != nil {
		return fmt.Errorf("house number: %w", err)
	}
	return nil
}

// checkLine checks one line of text: valid UTF-8, no control characters,
// at most max bytes.
func checkLine(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%d bytes, at most %d: shorten it", len(s), max)
	}
	if !utf8.ValidString(s) {
		return errors.New("not valid text")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return errors.New("control characters are not allowed")
		}
	}
	return nil
}

// checkText checks free text of several lines.
func checkText(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid text")
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return errors.New("control characters are not allowed")
		}
	}
	return nil
}
