package brokerconfig

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzParseState: kogge-broker.json is read back from a directory others
// may have edited; garbage is refused with an error.
func FuzzParseState(f *testing.F) {
	good, err := json.Marshal(state{Kind: "mosquitto", Mosquitto: &Mosquitto{ConfDir: "/etc/mosquitto/kogge", Listen: "8883",
		Names: []string{"broker"}, Replicas: []string{"r1"}, User: "mosquitto", PidFile: "/run/mosquitto.pid",
		CertLifetime: time.Hour, CRLValidity: time.Hour, MaxQueued: 1000}, CRLNumber: 3, Revoked: "ab"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"kind":"emqx"}`))
	f.Add([]byte(`{"kind":"mosquitto","mosquitto":{"conf_dir":"rel"}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseState(b)
		if err != nil {
			return
		}
		if st.Mosquitto == nil || st.Mosquitto.Validate() != nil {
			t.Fatalf("accepted an unusable state: %+v", st)
		}
	})
}
