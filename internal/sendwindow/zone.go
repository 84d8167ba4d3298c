package sendwindow

import (
	"errors"
	"strings"
	"time"
)

// LoadZone loads an IANA time zone name (Europe/Vienna, America/New_York,
// UTC). Unlike time.LoadLocation it refuses "" and "Local" (the server's
// own zone is nobody's), and names that are not in the zone database.
func LoadZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, errors.New("want an IANA time zone name like Europe/Vienna")
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, errors.New("unknown time zone " + quote(name) + ": want an IANA name like Europe/Vienna")
	}
	return loc, nil
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return `"` + s + `"`
}

// Zones picks a user's zone.
type Zones struct {
	// Default is the zone of a user with no usable timezone or country
	// (DEFAULT_TIMEZONE); nil is TimezoneDefault.
	Default *time.Location
}

// For is the zone of a user whose contact names timezone and whose Podero
// user names country: the contact's zone when it loads, else the country's
// (CountryZone), else z.Default.
func (z Zones) For(timezone, country string) *time.Location {
	if timezone != "" {
		if loc, err := LoadZone(timezone); err == nil {
			return loc
		}
	}
	if name, ok := CountryZone(country); ok {
		if loc, err := time.LoadLocation(name); err == nil {
			return loc
		}
	}
	if z.Default != nil {
		return z.Default
	}
	loc, err := time.LoadLocation(TimezoneDefault)
	if err != nil {
		return time.UTC // unreachable: the zone database is embedded
	}
	return loc
}

// CountryZone is the primary IANA zone of an ISO 3166-1 alpha-2 country
// code (any case, surrounding spaces ignored): for a country with several
// zones, its capital's. Podero documents no format for a user's country;
// a value that is not a known code is not found.
func CountryZone(country string) (string, bool) {
	z, ok := countryZones[strings.ToUpper(strings.TrimSpace(country))]
	return z, ok
}

// countryZones covers Europe entirely and the most common others.
var countryZones = map[string]string{
	// Europe
	"AD": "Europe/Andorra", "AL": "Europe/Tirane", "AT": "Europe/Vienna", "AX": "Europe/Mariehamn",
	"BA": "Europe/Sarajevo", "BE": "Europe/Brussels", "BG": "Europe/Sofia", "BY": "Europe/Minsk",
	"CH": "Europe/Zurich", "CY": "Asia/Nicosia", "CZ": "Europe/Prague", "DE": "Europe/Berlin",
	"DK": "Europe/Copenhagen", "EE": "Europe/Tallinn", "ES": "Europe/Madrid", "FI": "Europe/Helsinki",
	"FO": "Atlantic/Faroe", "FR": "Europe/Paris", "GB": "Europe/London", "GG": "Europe/Guernsey",
	"GI": "Europe/Gibraltar", "GR": "Europe/Athens", "HR": "Europe/Zagreb", "HU": "Europe/Budapest",
	"IE": "Europe/Dublin", "IM": "Europe/Isle_of_Man", "IS": "Atlantic/Reykjavik", "IT": "Europe/Rome",
	"JE": "Europe/Jersey", "LI": "Europe/Vaduz", "LT": "Europe/Vilnius", "LU": "Europe/Luxembourg",
	"LV": "Europe/Riga", "MC": "Europe/Monaco", "MD": "Europe/Chisinau", "ME": "Europe/Podgorica",
	"MK": "Europe/Skopje", "MT": "Europe/Malta", "NL": "Europe/Amsterdam", "NO": "Europe/Oslo",
	"PL": "Europe/Warsaw", "PT": "Europe/Lisbon", "RO": "Europe/Bucharest", "RS": "Europe/Belgrade",
	"RU": "Europe/Moscow", "SE": "Europe/Stockholm", "SI": "Europe/Ljubljana", "SJ": "Arctic/Longyearbyen",
	"SK": "Europe/Bratislava", "SM": "Europe/San_Marino", "TR": "Europe/Istanbul", "UA": "Europe/Kyiv",
	"VA": "Europe/Vatican", "XK": "Europe/Belgrade",
	// Elsewhere
	"AE": "Asia/Dubai", "AR": "America/Argentina/Buenos_Aires", "AU": "Australia/Sydney", "BR": "America/Sao_Paulo",
	"CA": "America/Toronto", "CL": "America/Santiago", "CN": "Asia/Shanghai", "CO": "America/Bogota",
	"EG": "Africa/Cairo", "HK": "Asia/Hong_Kong", "ID": "Asia/Jakarta", "IL": "Asia/Jerusalem",
	"IN": "Asia/Kolkata", "JP": "Asia/Tokyo", "KE": "Africa/Nairobi", "KR": "Asia/Seoul",
	"MA": "Africa/Casablanca", "MX": "America/Mexico_City", "MY": "Asia/Kuala_Lumpur", "NG": "Africa/Lagos",
	"NZ": "Pacific/Auckland", "PE": "America/Lima", "PH": "Asia/Manila", "SA": "Asia/Riyadh",
	"SG": "Asia/Singapore", "TH": "Asia/Bangkok", "TN": "Africa/Tunis", "TW": "Asia/Taipei",
	"US": "America/New_York", "VN": "Asia/Ho_Chi_Minh", "ZA": "Africa/Johannesburg",
}
