// Package shift is the officer's session on a handheld: login with a PIN,
// the start and end of a shift, and the list of the day's own cases.
//
// # Officers and PINs
//
// The device's configuration provisions the officers ([Officer]): service
// number, name, crew and the argon2id hash of the PIN in PHC form
// ([HashPIN] makes one; the device never stores a PIN). [Manager.Login]
// checks a PIN against the hash in constant time. Wrong PINs are counted for
// the device, not per officer number, so that guessing cannot move from one
// officer to the next: after Options.MaxAttempts (5) wrong PINs in a row the
// login locks for Options.Lockout (15 min), each further lock without a
// successful login in between twice as long, up to Options.MaxLockout (4 h).
// An unknown officer number costs as much time as a known one and gives the
// same error ([ErrWrongPIN]), so it does not reveal which numbers exist.
//
// # Shifts
//
// A logged-in officer starts a shift ([Manager.StartShift]) and ends it
// ([Manager.EndShift]), which also logs them out. Logging out
// ([Manager.Logout]) or a restart leaves the shift open; the same officer
// continues it after the next login. When another officer logs in while a
// shift is open, that shift ends with the reason [EndedByHandover].
//
// # Persistence
//
// The Manager keeps its state as one JSON value in a [Values] store under
// Options.Key ("shift.state"); the app passes the agent's store
// (agent/store.Store.GetValue and PutValue), so the state lives in the
// device's SQLite file, written with fsync before an action returns. The
// state holds the open shift, the last ended shifts (Options.History), the
// wrong-PIN count and the lock. It never holds a PIN or a hash, and not the
// logged-in officer: after a restart the officer logs in again, and the
// lock survives the restart.
//
// # Cases
//
// [Manager.Cases] lists the logged-in officer's cases of the day (since
// local midnight, or since the start of a night shift), newest first, from
// every [CaseSource] in Options.Sources: road reports (roadwork.Tracker)
// and enforcement notices both fit the small [Case] shape.
package shift
