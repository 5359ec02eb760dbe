package enforcement

import (
	"slices"
	"strings"
)

// Nationality is a country's international vehicle registration code
// (Vienna Convention, the oval sticker or the letters in the plate's EU
// band) with the length bounds of its plates without separators. The
// bounds are lenient: they cover current and older formats.
type Nationality struct {
	// Code is the registration code ("NL").
	Code string
	// German and English are the country's names for pick lists.
	German, English string
	// MinLen and MaxLen bound the plate's length without separators.
	MinLen, MaxLen int
}

// nationalities are the registration codes wardens meet most, Germany
// first, then by German name.
var nationalities = []Nationality{
	{"D", "Deutschland", "Germany", 2, 9},
	{"AL", "Albanien", "Albania", 2, 8},
	{"BY", "Belarus", "Belarus", 2, 8},
	{"B", "Belgien", "Belgium", 2, 8},
	{"BIH", "Bosnien und Herzegowina", "Bosnia and Herzegovina", 2, 9},
	{"BG", "Bulgarien", "Bulgaria", 2, 8},
	{"DK", "Dänemark", "Denmark", 2, 7},
	{"EST", "Estland", "Estonia", 2, 7},
	{"FIN", "Finnland", "Finland", 2, 7},
	{"F", "Frankreich", "France", 2, 9},
	{"GR", "Griechenland", "Greece", 2, 8},
	{"GB", "Großbritannien", "United Kingdom", 2, 7},
	{"IRL", "Irland", "Ireland", 2, 10},
	{"IS", "Island", "Iceland", 2, 6},
	{"I", "Italien", "Italy", 2, 8},
	{"HR", "Kroatien", "Croatia", 2, 8},
	{"LV", "Lettland", "Latvia", 2, 7},
	{"FL", "Liechtenstein", "Liechtenstein", 2, 7},
	{"LT", "Litauen", "Lithuania", 2, 7},
	{"L", "Luxemburg", "Luxembourg", 2, 6},
	{"M", "Malta", "Malta", 2, 6},
	{"MD", "Moldau", "Moldova", 2, 8},
	{"MNE", "Montenegro", "Montenegro", 2, 8},
	{"NL", "Niederlande", "Netherlands", 2, 8},
	{"NMK", "Nordmazedonien", "North Macedonia", 2, 8},
	{"N", "Norwegen", "Norway", 2, 7},
	{"A", "Österreich", "Austria", 2, 9},
	{"PL", "Polen", "Poland", 2, 8},
	{"P", "Portugal", "Portugal", 2, 8},
	{"RO", "Rumänien", "Romania", 2, 8},
	{"RUS", "Russland", "Russia", 2, 10},
	{"S", "Schweden", "Sweden", 2, 7},
	{"CH", "Schweiz", "Switzerland", 2, 8},
	{"SRB", "Serbien", "Serbia", 2, 9},
	{"SK", "Slowakei", "Slovakia", 2, 8},
	{"SLO", "Slowenien", "Slovenia", 2, 8},
	{"E", "Spanien", "Spain", 2, 9},
	{"CZ", "Tschechien", "Czechia", 2, 8},
	{"TR", "Türkei", "Türkiye", 2, 9},
	{"UA", "Ukraine", "Ukraine", 2, 8},
	{"H", "Ungarn", "Hungary", 2, 8},
	{"CY", "Zypern", "Cyprus", 2, 7},
}

// Nationalities returns the pick list of registration codes: Germany
// first, then by German name. A code not in the list is accepted for
// foreign plates too (with lengths 1–12).
func Nationalities() []Nationality { return slices.Clone(nationalities) }

func nationalityByCode(code string) (Nationality, bool) {
	for _, n := range nationalities {
		if n.Code == code {
			return n, true
		}
	}
	return Nationality{}, false
}

// makes are common vehicle makes on German roads (cars, vans, lorries,
// motorcycles), spelled as the registration statistics spell them.
var makes = []string{
	"Alfa Romeo", "Audi", "BMW", "BYD", "Citroën", "Cupra", "Dacia", "DAF",
	"DS", "Fiat", "Ford", "Harley-Davidson", "Honda", "Hyundai", "Iveco",
	"Jaguar", "Jeep", "Kawasaki", "Kia", "KTM", "Land Rover", "Lexus", "MAN",
	"Mazda", "Mercedes-Benz", "MG", "Mini", "Mitsubishi", "Nissan", "Opel",
	"Peugeot", "Piaggio", "Polestar", "Porsche", "Renault", "Scania", "Seat",
	"Skoda", "Smart", "Subaru", "Suzuki", "Tesla", "Toyota", "Volvo", "VW",
	"Yamaha",
}

// Makes returns the pick list of vehicle makes, sorted. Wardens may enter
// another make as text.
func Makes() []string { return slices.Clone(makes) }

// Colour is a vehicle colour of the pick list. The case record and the
// printed notice carry the German name.
type Colour struct {
	German  string
	English string
}

var colours = []Colour{
	{"weiß", "white"}, {"schwarz", "black"}, {"grau", "grey"},
	{"silber", "silver"}, {"blau", "blue"}, {"rot", "red"},
	{"grün", "green"}, {"gelb", "yellow"}, {"orange", "orange"},
	{"braun", "brown"}, {"beige", "beige"}, {"gold", "gold"},
	{"violett", "purple"}, {"mehrfarbig", "multicoloured"},
}

// Colours returns the pick list of colours, the common ones first.
func Colours() []Colour { return slices.Clone(colours) }

// ColourByName finds a colour of the pick list by its German or English
// name, regardless of case.
func ColourByName(name string) (Colour, bool) {
	name = strings.TrimSpace(name)
	for _, c := range colours {
		if strings.EqualFold(c.German, name) || strings.EqualFold(c.English, name) {
			return c, true
		}
	}
	return Colour{}, false
}
