package sendwindow

// EachCountryZone calls fn with every country code and zone of the table.
func EachCountryZone(fn func(country, zone string)) {
	for cc, z := range countryZones {
		fn(cc, z)
	}
}
