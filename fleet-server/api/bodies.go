package api

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// The request bodies of the API. Each has a decoder that reads it strictly
// and checks what the API itself can check; the services check the rest.

// Limits of request fields the API checks itself.
const (
	maxNameLen   = 200
	maxReasonLen = 500
	maxTTL       = 365 * 24 * time.Hour
)

// createGroupRequest is the body of POST /api/v1/groups.
type createGroupRequest struct {
	// ID is optional; the registry derives one from the name.
	ID   string `json:"id"`
	Name string `json:"name"`
}

func decodeCreateGroup(b []byte) (createGroupRequest, error) {
	var v createGroupRequest
	if err := decodeStrict(b, &v); err != nil {
		return v, err
	}
	if strings.TrimSpace(v.Name) == "" {
		return v, badRequest("name: a group needs a name")
	}
	if err := checkText("name", v.Name, maxNameLen); err != nil {
		return v, err
	}
	if err := checkText("id", v.ID, maxNameLen); err != nil {
		return v, err
	}
	return v, nil
}

// renameGroupRequest is the body of PATCH /api/v1/groups/{group}.
type renameGroupRequest struct {
	Name string `json:"name"`
}

func decodeRenameGroup(b []byte) (renameGroupRequest, error) {
	var v renameGroupRequest
	if err := decodeStrict(b, &v); err != nil {
		return v, err
	}
	if strings.TrimSpace(v.Name) == "" {
		return v, badRequest("name: a group needs a name")
	}
	return v, checkText("name", v.Name, maxNameLen)
}

// createCodeRequest is the body of POST /api/v1/enroll-codes.
type createCodeRequest struct {
	Group string `json:"group"`
	// TTL is a Go duration such as "24h"; empty for the server's default.
	TTL  string `json:"ttl"`
	Note string `json:"note"`
}

func decodeCreateCode(b []byte) (createCodeRequest, time.Duration, error) {
	var v createCodeRequest
	if err := decodeStrict(b, &v); err != nil {
		return v, 0, err
	}
	if v.Group == "" {
		return v, 0, badRequest("group: name the group the code enrolls into")
	}
	if err := checkText("group", v.Group, maxNameLen); err != nil {
		return v, 0, err
	}
	if err := checkText("note", v.Note, maxReasonLen); err != nil {
		return v, 0, err
	}
	ttl, err := parseTTL(v.TTL)
	return v, ttl, err
}

// revokeDeviceRequest is the body of POST /api/v1/devices/{device}/revoke;
// the body is optional.
type revokeDeviceRequest struct {
	Reason string `json:"reason"`
}

func decodeRevokeDevice(b []byte) (revokeDeviceRequest, error) {
	var v revokeDeviceRequest
	if len(strings.TrimSpace(string(b))) == 0 {
		return v, nil
	}
	if err := decodeStrict(b, &v); err != nil {
		return v, err
	}
	return v, checkText("reason", v.Reason, maxReasonLen)
}

// parseTTL reads an optional Go duration: "" is 0.
func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, badRequest("ttl: %q is not a duration such as 30m or 24h", s)
	}
	if d <= 0 || d > maxTTL {
		return 0, badRequest("ttl: %v is outside 1ns to %v", d, maxTTL)
	}
	return d, nil
}

// checkText accepts valid UTF-8 without control characters, up to max
// bytes.
func checkText(field, s string, max int) error {
	if len(s) > max {
		return badRequest("%s: %d bytes, at most %d", field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return badRequest("%s: not valid UTF-8", field)
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return badRequest("%s: holds the control character %U", field, c)
		}
	}
	return nil
}

// describe is a short form of a value for error messages.
func describe(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%q…", s[:40])
	}
	return fmt.Sprintf("%q", s)
}

// sendCommandRequest is the body of POST /api/v1/commands: to one device or
// to every device of a group.
type sendCommandRequest struct {
	Device string            `json:"device"`
	Group  string            `json:"group"`
	Name   string            `json:"name"`
	Args   map[string]string `json:"args"`
	// TTL is a Go duration; empty for the server's default.
	TTL string `json:"ttl"`
}

// Limits of a command the API checks before the commands service checks
// the rest against the protocol.
const (
	maxCommandArgs   = 32
	maxCommandArgLen = 1024
)

func decodeSendCommand(b []byte) (sendCommandRequest, time.Duration, error) {
	var v sendCommandRequest
	if err := decodeStrict(b, &v); err != nil {
		return v, 0, err
	}
	if (v.Device == "") == (v.Group == "") {
		return v, 0, badRequest("name either a device or a group, not both")
	}
	if v.Name == "" {
		return v, 0, badRequest("name: say which command to send")
	}
	for _, f := range []struct{ name, v string }{{"device", v.Device}, {"group", v.Group}, {"name", v.Name}} {
		if err := checkText(f.name, f.v, maxNameLen); err != nil {
			return v, 0, err
		}
	}
	if len(v.Args) > maxCommandArgs {
		return v, 0, badRequest("args: %d arguments, at most %d", len(v.Args), maxCommandArgs)
	}
	for k, a := range v.Args {
		if err := checkText("args key", k, maxNameLen); err != nil {
			return v, 0, err
		}
		if err := checkText("args."+k, a, maxCommandArgLen); err != nil {
			return v, 0, err
		}
	}
	ttl, err := parseTTL(v.TTL)
	return v, ttl, err
}

// twinRequest is the body of PUT .../twin and PUT .../twin/override: a
// configuration object.
type twinRequest struct {
	Config map[string]any `json:"config"`
}

// maxTwinDepth bounds the nesting of a configuration here; the twin service
// applies the wire's exact bound.
const maxTwinDepth = 16

func decodeTwin(b []byte) (twinRequest, error) {
	var v twinRequest
	if err := decodeStrictNumbers(b, &v); err != nil {
		return v, err
	}
	if v.Config == nil {
		return v, badRequest(`config: send the configuration as a JSON object, e.g. {"config": {"heartbeat_s": 30}}`)
	}
	if d := jsonDepth(v.Config); d > maxTwinDepth {
		return v, badRequest("config: nested %d levels deep, at most %d", d, maxTwinDepth)
	}
	return v, nil
}

func jsonDepth(v any) int {
	d := 0
	switch v := v.(type) {
	case map[string]any:
		for _, x := range v {
			d = max(d, jsonDepth(x))
		}
		return d + 1
	case []any:
		for _, x := range v {
			d = max(d, jsonDepth(x))
		}
		return d + 1
	}
	return 0
}
