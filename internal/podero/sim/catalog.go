package sim

import (
	"crypto/sha256"
	"encoding/binary"
	"strings"

	"github.com/reauth/reauth"
)

// product is a device model the seed hands out; "" fields are sent as null
// (Podero does not always know a device's make).
type product struct {
	manufacturer, model, cloudService string
	year                              int // 0: null
}

// catalog lists the products of each kind. The last entries of each kind
// have no model, or no make at all.
var catalog = map[reauth.DeviceKind][]product{
	reauth.Inverter: {
		{"SMA", "Sunny Boy 5.0", "Sunny Portal", 2021},
		{"Fronius", "Primo 8.2-1", "Fronius Solar.web", 2020},
		{"Huawei", "SUN2000-6KTL-M1", "FusionSolar", 2022},
		{"SolarEdge", "SE5000H", "SolarEdge Monitoring", 2019},
		{"SMA", "", "Sunny Portal", 0},
		{"", "", "", 0},
	},
	reauth.ElectricVehicle: {
		{"Tesla", "Model 3", "Tesla Fleet API", 2022},
		{"Volkswagen", "ID.4", "Volkswagen We Connect", 2021},
		{"BMW", "i4 eDrive40", "BMW ConnectedDrive", 2023},
		{"Hyundai", "IONIQ 5", "Hyundai Bluelink", 2022},
		{"Renault", "", "My Renault", 0},
		{"", "", "", 0},
	},
	reauth.Wallbox: {
		{"Easee", "Home", "Easee Cloud", 2021},
		{"Zaptec", "Go", "Zaptec Portal", 2022},
		{"Wallbox", "Pulsar Plus", "myWallbox", 2021},
		{"go-e", "Charger Gemini", "go-e Cloud", 2023},
		{"Easee", "", "Easee Cloud", 0},
		{"", "", "", 0},
	},
}

// deviceTypes are the device_type of each kind: short_name, long_name.
var deviceTypes = map[reauth.DeviceKind][2]string{
	reauth.Inverter:        {"inverter", "Solar Inverter"},
	reauth.ElectricVehicle: {"electric_vehicle", "Electric Vehicle"},
	reauth.Wallbox:         {"wallbox", "Wallbox"},
}

// People's names and countries the seed draws users from.
var (
	firstNames = []string{"Anna", "Lukas", "Sophie", "Jonas", "Lena", "Felix", "Marie", "Elias", "Emma", "David", "Clara", "Erik"}
	lastNames  = []string{"Gruber", "Huber", "Bauer", "Wagner", "Müller", "Schmid", "Berger", "Fischer", "Lindqvist", "Nagy", "Rossi", "Kowalski"}
	countries  = []string{"AT", "DE", "AT", "DE", "SE", "HU", "IT", "PL"}
)

// pick returns one of n choices for key and purpose, the same every time.
func pick(key, purpose string, n int) int {
	h := sha256.Sum256([]byte(purpose + "/" + key))
	return int(binary.BigEndian.Uint64(h[:8]) % uint64(n))
}

// externalDeviceID is a manufacturer-style ID for the device key: a
// 17-character VIN for a vehicle, a serial number otherwise.
func externalDeviceID(kind reauth.DeviceKind, key string) string {
	h := sha256.Sum256([]byte("external/" + key))
	const vin = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789" // no I, O, Q
	const digits = "0123456789"
	var b strings.Builder
	switch kind {
	case reauth.ElectricVehicle:
		for _, c := range h[:17] {
			b.WriteByte(vin[int(c)%len(vin)])
		}
	case reauth.Wallbox:
		b.WriteString("EH")
		for _, c := range h[:8] {
			b.WriteByte(vin[int(c)%len(vin)])
		}
	default:
		b.WriteString("30")
		for _, c := range h[:8] {
			b.WriteByte(digits[int(c)%len(digits)])
		}
	}
	return b.String()
}

// strOrNull is s, or nil (JSON null) when it is "".
func strOrNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
