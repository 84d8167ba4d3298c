package podero

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Decoding of users and devices. Podero documents every field as nullable
// and little of its format, and one unreadable field must not make a whole
// listing (and so a user's or an organization's sync) fail. So, besides
// null for every field:
//   - times are RFC 3339, with or without a zone (UTC then) or a date alone;
//     a time that is there but unreadable is the zero time, not nil (a
//     deleted_at Podero sent still means deleted), and "" is nil;
//   - counts and the model year are JSON numbers or numeric strings;
//     anything else, or a negative count, is nil (unknown);
//   - resolution_link is an object {url, required_parameters} as documented,
//     or a plain URL string;
//   - lifecycle_error is any JSON, kept as sent up to MaxLifecycleErrorBytes.
//
// The id and the remaining fields keep their types: a device whose id is
// a number is a malformed answer.

// MaxLifecycleErrorBytes is the largest lifecycle_error kept as Podero sent
// it; a larger one becomes a JSON string that says how large it was.
const MaxLifecycleErrorBytes = 2048

// UnmarshalJSON decodes a Podero user, tolerating what decode.go says.
func (u *User) UnmarshalJSON(b []byte) error {
	type plain User // without this method
	var v struct {
		plain
		LastLogin           looseTime `json:"last_login"`
		JoinedAt            looseTime `json:"joined_at"`
		DeletedAt           looseTime `json:"deleted_at"`
		NumInverters        looseInt  `json:"num_inverters"`
		NumElectricVehicles looseInt  `json:"num_electric_vehicles"`
		NumWallboxes        looseInt  `json:"num_wallboxes"`
		NumHeatPumps        looseInt  `json:"num_heat_pumps"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*u = User(v.plain)
	u.LastLogin, u.JoinedAt, u.DeletedAt = v.LastLogin.t, v.JoinedAt.t, v.DeletedAt.t
	u.NumInverters, u.NumElectricVehicles = v.NumInverters.count(), v.NumElectricVehicles.count()
	u.NumWallboxes, u.NumHeatPumps = v.NumWallboxes.count(), v.NumHeatPumps.count()
	return nil
}

// UnmarshalJSON decodes a Podero device, tolerating what decode.go says.
func (d *Device) UnmarshalJSON(b []byte) error {
	type plain Device // without this method
	var v struct {
		plain
		LifecycleError            json.RawMessage `json:"lifecycle_error"`
		CreatedAt                 looseTime       `json:"created_at"`
		UpdatedAt                 looseTime       `json:"updated_at"`
		DeletedAt                 looseTime       `json:"deleted_at"`
		CurrentStateLastUpdatedAt looseTime       `json:"current_state_last_updated_at"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*d = Device(v.plain)
	d.LifecycleError = lifecycleError(v.LifecycleError)
	d.CreatedAt, d.UpdatedAt, d.DeletedAt = v.CreatedAt.t, v.UpdatedAt.t, v.DeletedAt.t
	d.CurrentStateLastUpdatedAt = v.CurrentStateLastUpdatedAt.t
	return nil
}

// lifecycleError is raw as Device.LifecycleError keeps it: nil for none or
// null, compact, and within MaxLifecycleErrorBytes.
func lifecycleError(raw json.RawMessage) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) == nil {
		raw = buf.Bytes()
	}
	if len(raw) > MaxLifecycleErrorBytes {
		s, _ := json.Marshal(fmt.Sprintf("lifecycle_error of %d bytes, not kept", len(raw)))
		return s
	}
	return raw
}

// UnmarshalJSON decodes a device's model, tolerating a year sent as a
// string.
func (m *DeviceModel) UnmarshalJSON(b []byte) error {
	type plain DeviceModel // without this method
	var v struct {
		plain
		Year looseInt `json:"year"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*m = DeviceModel(v.plain)
	m.Year = v.Year.n
	return nil
}

// UnmarshalJSON decodes an action whose resolution_link is the documented
// object {url, required_parameters} or a plain URL.
func (a *Action) UnmarshalJSON(b []byte) error {
	var v struct {
		Code string          `json:"code"`
		Link json.RawMessage `json:"resolution_link"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*a = Action{Code: v.Code}
	link := bytes.TrimSpace(v.Link)
	switch {
	case len(link) == 0 || string(link) == "null":
	case link[0] == '"':
		return json.Unmarshal(link, &a.ResolutionLink)
	default:
		var obj struct {
			URL string `json:"url"`
		}
		if err := json.Unmarshal(link, &obj); err != nil {
			return err
		}
		a.ResolutionLink = obj.URL
	}
	return nil
}

// looseTime is a time decoded as decode.go says; t is nil for null or "".
type looseTime struct{ t *time.Time }

// timeLayouts are the formats a time may come in, tried in order.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999", // no zone: UTC
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	time.DateOnly,
}

func (lt *looseTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		if s = strings.TrimSpace(s); s == "" {
			return nil
		}
		for _, layout := range timeLayouts {
			if t, err := time.Parse(layout, s); err == nil {
				lt.t = &t
				return nil
			}
		}
	}
	lt.t = new(time.Time) // there, but unreadable
	return nil
}

// looseInt is a whole number decoded as decode.go says; n is nil for null
// or anything unreadable.
type looseInt struct{ n *int }

func (li *looseInt) UnmarshalJSON(b []byte) error {
	raw := strings.TrimSpace(string(b))
	var s string
	if json.Unmarshal(b, &s) == nil {
		raw = strings.TrimSpace(s)
	}
	f, err := strconv.ParseFloat(raw, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
		return nil
	}
	n := int(f)
	li.n = &n
	return nil
}

// count is li as a device count: nil when unknown or negative.
func (li looseInt) count() *int {
	if li.n == nil || *li.n < 0 {
		return nil
	}
	return li.n
}
