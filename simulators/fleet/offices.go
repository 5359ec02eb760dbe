package fleet

import (
	"fmt"
	"maps"
	"slices"

	"github.com/kogge-fleet/kogge/agent/twin"
	"github.com/kogge-fleet/kogge/protocol/seal"
)

// Office is one destination office with its key pair: the public half
// goes to the devices in the twin, the secret to the office's bridge.
type Office struct {
	Recipient seal.Recipient
	Secret    string
}

// Offices are the offices a simulation delivers to, each with a fresh key.
type Offices struct {
	byName map[string]Office
}

// GenerateOffices makes a key pair (key id "<office>-1") for every office.
func GenerateOffices(names ...string) (*Offices, error) {
	o := &Offices{byName: map[string]Office{}}
	for _, n := range names {
		if _, dup := o.byName[n]; dup {
			continue
		}
		r, secret, err := seal.GenerateKey(n, n+"-1")
		if err != nil {
			return nil, fmt.Errorf("office %s: %w", n, err)
		}
		o.byName[n] = Office{Recipient: r, Secret: secret}
	}
	return o, nil
}

// OfficesFor returns the names of the offices that devices of specs
// deliver to, sorted.
func OfficesFor(specs []DeviceSpec) []string {
	set := map[string]bool{}
	for _, s := range specs {
		set[s.Role.Office(s.District)] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// Names lists the offices, sorted.
func (o *Offices) Names() []string { return slices.Sorted(maps.Keys(o.byName)) }

// Get returns an office.
func (o *Offices) Get(name string) (Office, bool) {
	off, ok := o.byName[name]
	return off, ok
}

// Keyring returns the office's keyring for its bridge.
func (o *Offices) Keyring(name string) (*seal.Keyring, error) {
	off, ok := o.byName[name]
	if !ok {
		return nil, fmt.Errorf("no office %q", name)
	}
	k := seal.NewKeyring(name)
	if err := k.Add(off.Recipient.KeyID, off.Secret); err != nil {
		return nil, err
	}
	return k, nil
}

// Twin is the group twin configuration that gives devices the offices'
// keys (agent/twin KeyOffices) and a heartbeat every 10 s, so that the
// dashboard shows the devices' health moving.
func (o *Offices) Twin() map[string]any {
	keys := map[string]any{}
	for n, off := range o.byName {
		keys[n] = map[string]any{"key_id": off.Recipient.KeyID, "public_key": off.Recipient.PublicKey}
	}
	return map[string]any{twin.KeyOffices: keys, twin.KeyHeartbeat: 10}
}
