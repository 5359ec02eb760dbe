package finger_test

import (
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/kiosk/finger"
)

func TestFingerprintsAllowed(t *testing.T) {
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 12, 0, 0, 0, time.UTC) }
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		berlin = time.FixedZone("CET", 3600)
	}
	for _, tc := range []struct {
		name       string
		dob, today time.Time
		want       bool
	}{
		{"day before the sixth birthday", day(2019, 6, 15), day(2025, 6, 14), false},
		{"on the sixth birthday", day(2019, 6, 15), day(2025, 6, 15), true},
		{"the day after", day(2019, 6, 15), day(2025, 6, 16), true},
		{"first moment of the birthday", day(2019, 6, 15), time.Date(2025, 6, 15, 0, 0, 0, 0, time.UTC), true},
		{"last moment before it", day(2019, 6, 15), time.Date(2025, 6, 14, 23, 59, 59, 999999999, time.UTC), false},
		{"a year before", day(2019, 6, 15), day(2024, 6, 15), false},
		{"adult", day(1970, 1, 1), day(2025, 6, 15), true},
		{"newborn", day(2025, 6, 15), day(2025, 6, 15), false},
		{"born in the future", day(2026, 1, 1), day(2025, 6, 15), false},
		{"29 February, common year, 28 February", day(2020, 2, 29), day(2026, 2, 28), false},
		{"29 February, common year, 1 March", day(2020, 2, 29), day(2026, 3, 1), true},
		// A sixth birthday is never in a leap year for someone born on
		// 29 February; one born on 28 February has it on the 28th.
		{"28 February, leap year, the day before", day(2018, 2, 28), day(2024, 2, 27), false},
		{"28 February, leap year, 28 February", day(2018, 2, 28), day(2024, 2, 28), true},
		{"unknown date of birth", time.Time{}, day(2025, 6, 15), true},
		// Calendar dates in their own zone: just after midnight in
		// Berlin on the birthday is still the evening before in UTC.
		{"birthday in Berlin", day(2019, 6, 15), time.Date(2025, 6, 15, 0, 30, 0, 0, berlin), true},
		{"eve in Berlin", day(2019, 6, 15), time.Date(2025, 6, 14, 23, 30, 0, 0, berlin), false},
	} {
		if got := finger.FingerprintsAllowed(tc.dob, tc.today); got != tc.want {
			t.Errorf("%s: born %s, today %s: %v, want %v", tc.name, tc.dob.Format(time.DateOnly), tc.today.Format(time.RFC3339), got, tc.want)
		}
	}
}
