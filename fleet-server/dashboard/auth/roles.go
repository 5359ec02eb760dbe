package auth

import "slices"

// Role is what a dashboard user may do.
type Role string

// The roles. An auditor reads the audit log and nothing else; a viewer
// reads the fleet; an operator also acts on devices and deliveries; an
// admin also manages users, alert rules and revocations.
const (
	Admin    Role = "admin"
	Operator Role = "operator"
	Auditor  Role = "auditor"
	Viewer   Role = "viewer"
)

// Roles lists the roles, most powerful first.
func Roles() []Role { return []Role{Admin, Operator, Auditor, Viewer} }

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return slices.Contains(Roles(), r) }

// Permission is one thing a role may do.
type Permission string

// The permissions.
const (
	// ReadFleet: overview, devices, records pipeline, delivery, alerts.
	ReadFleet Permission = "read-fleet"
	// ReadAudit: the audit log.
	ReadAudit Permission = "read-audit"
	// Operate: send commands, replay or discard dead letters.
	Operate Permission = "operate"
	// Administer: users, alert rules, revoking devices.
	Administer Permission = "administer"
	// Self: the own account (password, second factor, sign-out); every
	// role has it.
	Self Permission = "self"
)

var grants = map[Role][]Permission{
	Admin:    {ReadFleet, ReadAudit, Operate, Administer, Self},
	Operator: {ReadFleet, Operate, Self},
	Auditor:  {ReadAudit, Self},
	Viewer:   {ReadFleet, Self},
}

// Can reports whether role r has permission p.
func (r Role) Can(p Permission) bool { return slices.Contains(grants[r], p) }
