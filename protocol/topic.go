package protocol

import "strings"

// Topic layout (MQTT 3.1.1). Every device has its own prefix, so that one ACL
// rule covers it:
//
//	kogge/v1/d/{device}/up/...    device → server (records, chunks, hello, heartbeat, twin, result)
//	kogge/v1/d/{device}/down/...  server → device (ack, sync, command, status)
//	kogge/v1/d/{device}/twin      retained desired configuration
//	kogge/v1/d/{device}/state     retained presence; the last will sets it offline
const (
	// TopicRoot is the versioned root of all Kogge topics.
	TopicRoot = "kogge/v1/d/"

	// UpFilter matches every device's uplink (for the server's ingest).
	UpFilter = TopicRoot + "+/up/#"
	// StateFilter matches every device's presence.
	StateFilter = TopicRoot + "+/state"
)

// ValidateDeviceID checks a device id: 1 to MaxDeviceIDLen characters of
// A–Z, a–z, 0–9, '.', '_' and '-', starting with a letter or digit. So it can
// hold no MQTT wildcard, no slash and nothing a shell or a file name would
// trip over.
func ValidateDeviceID(id string) error {
	return validateName("device", id, MaxDeviceIDLen, true)
}

// validateName checks an identifier: letters (upper case only if upper),
// digits, '.', '_' and '-', starting with a letter or digit.
func validateName(field, s string, max int, upper bool) error {
	if s == "" {
		return invalid(field, "empty")
	}
	if len(s) > max {
		return fieldErr(field, ErrTooLarge, "%d bytes, at most %d", len(s), max)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c >= 'A' && c <= 'Z' && upper:
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			allowed := "a-z, 0-9, '.', '_', '-'"
			if upper {
				allowed = "A-Z, a-z, 0-9, '.', '_', '-'"
			}
			return invalid(field, "character %q at %d: allowed are %s, starting with a letter or digit", c, i, allowed)
		}
	}
	return nil
}

// Topic is a parsed Kogge topic: the device it belongs to and the message type
// it carries.
type Topic struct {
	Device string
	Type   Type
}

// String returns the MQTT topic name.
func (t Topic) String() string { return TopicRoot + t.Device + "/" + typeTable[t.Type].suffix }

// TopicFor returns the topic that carries messages of type t for a device.
func TopicFor(device string, t Type) (string, error) {
	if err := ValidateDeviceID(device); err != nil {
		return "", err
	}
	if !t.Known() {
		return "", fieldErr("topic", ErrTopic, "no topic for message %v", t)
	}
	return Topic{Device: device, Type: t}.String(), nil
}

// ParseTopic parses a topic name (not a filter) of a known message type.
func ParseTopic(s string) (Topic, error) {
	rest, ok := strings.CutPrefix(s, TopicRoot)
	if !ok {
		return Topic{}, fieldErr("topic", ErrTopic, "%q does not start with %q", clip(s), TopicRoot)
	}
	device, suffix, ok := strings.Cut(rest, "/")
	if !ok {
		return Topic{}, fieldErr("topic", ErrTopic, "%q has nothing after the device id", clip(s))
	}
	if err := ValidateDeviceID(device); err != nil {
		e := err.(*Error)
		return Topic{}, fieldErr("topic", ErrTopic, "device id: %s", e.Detail)
	}
	for t, info := range typeTable {
		if info.suffix == suffix {
			return Topic{Device: device, Type: t}, nil
		}
	}
	return Topic{}, fieldErr("topic", ErrTopic, "unknown topic %q under device %q", clip(suffix), device)
}

// DeviceMayPublish reports whether a device may publish to topic: only under
// its own up/ prefix and to its own state topic, never with wildcards.
func DeviceMayPublish(device, topic string) bool {
	if ValidateDeviceID(device) != nil || strings.ContainsAny(topic, "+#") {
		return false
	}
	prefix := TopicRoot + device + "/"
	rest, ok := strings.CutPrefix(topic, prefix)
	if !ok {
		return false
	}
	return rest == "state" || (strings.HasPrefix(rest, "up/") && len(rest) > len("up/"))
}

// DeviceMaySubscribe reports whether a device may subscribe to filter: only
// its own down/# (or a topic under it) and its own twin, never with other
// wildcards.
func DeviceMaySubscribe(device, filter string) bool {
	if ValidateDeviceID(device) != nil {
		return false
	}
	prefix := TopicRoot + device + "/"
	rest, ok := strings.CutPrefix(filter, prefix)
	if !ok {
		return false
	}
	switch {
	case rest == "twin", rest == "down/#":
		return true
	case strings.HasPrefix(rest, "down/") && len(rest) > len("down/"):
		return !strings.ContainsAny(rest, "+#")
	}
	return false
}

// DeviceFilters returns the filters a device subscribes to: its downlink and
// its twin.
func DeviceFilters(device string) []string {
	return []string{TopicRoot + device + "/down/#", TopicRoot + device + "/twin"}
}

// clip shortens s for an error message.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
