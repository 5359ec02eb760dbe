package finger

import "time"

// MinAge is the age in years from which fingerprints are taken for ID
// cards and passports: from the completed sixth year.
const MinAge = 6

// FingerprintsAllowed reports whether fingerprints may be taken from a
// person born on dob, on the day today: not before their sixth birthday.
// Only the calendar dates count, each in its own location. Age is counted
// as German law does (BGB §187(2), §188): a year is completed at the end
// of the day before the birthday, and someone born on 29 February turns
// six on 1 March in a common year. A zero dob means the date of birth is
// unknown: the rule cannot apply, and the answer is true. A dob after
// today is refused like a child's.
func FingerprintsAllowed(dob, today time.Time) bool {
	if dob.IsZero() {
		return true
	}
	y, m, d := dob.Date()
	// time.Date normalises 29 February of a common year to 1 March.
	sixth := time.Date(y+MinAge, m, d, 0, 0, 0, 0, time.UTC)
	ty, tm, td := today.Date()
	return !time.Date(ty, tm, td, 0, 0, 0, 0, time.UTC).Before(sixth)
}
