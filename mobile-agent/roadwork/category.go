package roadwork

import (
	"fmt"
	"strings"

	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// Category is the kind of damage: the report's category, which the Open311
// connector maps to the road-maintenance system's service code
// (procedure.service-codes, e.g. pothole=001,damaged-sign=002,
// streetlight=003,*=099). The codes are stable: they are in delivered
// reports and in the bridges' configurations.
type Category string

// The categories a crew chooses from.
const (
	Pothole      Category = "pothole"
	Crack        Category = "crack"
	Subsidence   Category = "subsidence"
	DamagedSign  Category = "damaged-sign"
	TrafficLight Category = "traffic-light"
	Streetlight  Category = "streetlight"
	Obstacle     Category = "obstacle"
	Other        Category = "other"
)

// Languages of the labels.
const (
	LangDE = "de"
	LangEN = "en"
)

var categoryLabels = map[Category][2]string{
	Pothole:      {"Schlagloch", "Pothole"},
	Crack:        {"Riss", "Crack"},
	Subsidence:   {"Absenkung", "Subsidence"},
	DamagedSign:  {"Verkehrszeichen beschädigt", "Damaged sign"},
	TrafficLight: {"Ampelstörung", "Traffic light fault"},
	Streetlight:  {"Straßenbeleuchtung defekt", "Street light out"},
	Obstacle:     {"Hindernis auf der Fahrbahn", "Obstacle on the road"},
	Other:        {"Sonstiges", "Other"},
}

// Categories returns the categories in the order a pick list shows them.
func Categories() []Category {
	return []Category{Pothole, Crack, Subsidence, DamagedSign, TrafficLight, Streetlight, Obstacle, Other}
}

// Valid reports whether c is one of Categories.
func (c Category) Valid() bool {
	_, ok := categoryLabels[c]
	return ok
}

// Label returns the category's name in lang ("de" or "en"; German
// otherwise). An unknown category is shown by its code.
func (c Category) Label(lang string) string {
	if l, ok := categoryLabels[c]; ok {
		return pick(l, lang)
	}
	return string(c)
}

// ParseCategory reads a category by its code or its label in either
// language, ignoring case and surrounding space.
func ParseCategory(s string) (Category, error) {
	s = strings.TrimSpace(s)
	for _, c := range Categories() {
		l := categoryLabels[c]
		if strings.EqualFold(s, string(c)) || strings.EqualFold(s, l[0]) || strings.EqualFold(s, l[1]) {
			return c, nil
		}
	}
	return "", fmt.Errorf("unknown damage category %q: choose one of %v", s, Categories())
}

// Severities are the severities in the order a pick list shows them
// (casefile's values).
func Severities() []string {
	return []string{casefile.SeverityLow, casefile.SeverityMedium, casefile.SeverityHigh, casefile.SeverityDanger}
}

var severityLabels = map[string][2]string{
	casefile.SeverityLow:    {"gering", "low"},
	casefile.SeverityMedium: {"mittel", "medium"},
	casefile.SeverityHigh:   {"hoch", "high"},
	casefile.SeverityDanger: {"Gefahr im Verzug", "immediate danger"},
}

// SeverityLabel returns a severity's name in lang.
func SeverityLabel(sev, lang string) string {
	if l, ok := severityLabels[sev]; ok {
		return pick(l, lang)
	}
	return sev
}

// ParseSeverity reads a severity by its code or its label in either
// language.
func ParseSeverity(s string) (string, error) {
	s = strings.TrimSpace(s)
	for _, sev := range Severities() {
		l := severityLabels[sev]
		if strings.EqualFold(s, sev) || strings.EqualFold(s, l[0]) || strings.EqualFold(s, l[1]) {
			return sev, nil
		}
	}
	return "", fmt.Errorf("unknown severity %q: choose one of %v", s, Severities())
}

func pick(l [2]string, lang string) string {
	if lang == LangEN {
		return l[1]
	}
	return l[0]
}
