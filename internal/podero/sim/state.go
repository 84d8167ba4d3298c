package sim

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/reauth/reauth"
)

// State is a snapshot of the seeded data and its current state.
type State struct {
	Orgs []Org `json:"orgs"`
}

// Org is an organization and its users.
type Org struct {
	ID    string `json:"id"`
	Users []User `json:"users"`
}

// User is a user and their devices.
type User struct {
	ID             string   `json:"id"`
	Email          string   `json:"email"`
	ExternalUserID string   `json:"external_user_id"`
	Devices        []Device `json:"devices"`
}

// Device is a device's state. Sessions counts the auth sessions created for
// it (a scripted failure or a 200 with null fields creates none).
type Device struct {
	ID              string            `json:"id"`
	Kind            reauth.DeviceKind `json:"kind"`
	Manufacturer    string            `json:"manufacturer,omitempty"` // "" when the API sends null
	Model           string            `json:"model,omitempty"`
	IsAuthenticated bool              `json:"is_authenticated"`
	ActionNeeded    bool              `json:"action_needed"`
	Sessions        int               `json:"sessions"`
}

// org, user, device and session are the live records behind State.
type org struct {
	id    string
	users []*user
}

type user struct {
	id, email, externalID string
	firstName, lastName   string
	country               string
	orgID                 string
	createdAt             time.Time
	lastLogin             time.Time
	devices               []*device // kinds in reauth.DeviceKinds order
}

type device struct {
	id            string
	kind          reauth.DeviceKind
	name          string
	orgID, userID string
	authenticated bool // false: the manufacturer connection has lapsed
	sessions      int
	product       product
	externalID    string
	createdAt     time.Time
	// changedAt is when the device last lapsed or was reconnected (its
	// creation until then).
	changedAt time.Time
	owner     *user
	now       func() time.Time // the server's clock

	// loginNotTaking: a login "succeeds" (the connect page redirects to
	// the success URL) but the device stays lapsed; see LoginDoesNotTake.
	loginNotTaking bool
}

// session is an auth session; its URLs are nil when the request had none
// (or null).
type session struct {
	id                    string
	deviceID              string
	successURL, cancelURL *string
}

// seed creates the orgs, users and devices (DevicesPerKind of each kind per
// user, or as many as DeviceMix draws); a Healthy fraction of devices starts
// authenticated, the rest lapsed.
// It runs once, from New, before the Server is shared.
func (s *Server) seed() {
	c := s.cfg
	epoch := time.Date(2024, 1, 15, 9, 0, 0, 0, time.UTC) // made-up creation time
	for i := 1; i <= c.Orgs; i++ {
		orgKey := fmt.Sprintf("%s/org/%d", c.Seed, i)
		o := &org{id: nameUUID(orgKey)}
		for j := 1; j <= c.UsersPerOrg; j++ {
			userKey := fmt.Sprintf("%s/user/%d", orgKey, j)
			u := &user{
				id:         nameUUID(userKey),
				email:      fmt.Sprintf("user%d.org%d@example.test", j, i),
				externalID: fmt.Sprintf("ext-org%d-user%d", i, j),
				firstName:  firstNames[pick(userKey, "first", len(firstNames))],
				lastName:   lastNames[pick(userKey, "last", len(lastNames))],
				country:    countries[pick(userKey, "country", len(countries))],
				orgID:      o.id,
				createdAt:  epoch.Add(time.Duration(i*1000+j) * time.Minute),
			}
			u.lastLogin = u.createdAt.Add(time.Duration(24+pick(userKey, "login", 24*300)) * time.Hour)
			for _, dk := range userDevices(c, userKey) {
				kind, k, key := dk.kind, dk.n, dk.key
				d := &device{
					id:            nameUUID(key),
					kind:          kind,
					name:          fmt.Sprintf("%s %d", kindTitle(kind), k),
					orgID:         o.id,
					userID:        u.id,
					authenticated: fraction(key) < c.Healthy,
					product:       catalog[kind][pick(key, "product", len(catalog[kind]))],
					externalID:    externalDeviceID(kind, key),
					createdAt:     u.createdAt.Add(time.Duration(k) * time.Hour),
					owner:         u,
					now:           c.Now,
				}
				d.changedAt = d.createdAt.Add(time.Duration(24+pick(key, "changed", 24*200)) * time.Hour)
				u.devices = append(u.devices, d)
				s.devices[d.id] = d
			}
			o.users = append(o.users, u)
			s.users[u.id] = u
		}
		s.orgs = append(s.orgs, o)
		s.orgByID[o.id] = o
	}
}

// userDevice is one device seed creates: its kind, its number among the
// user's devices of that kind (from 1) and the key its id and details are
// drawn from.
type userDevice struct {
	kind reauth.DeviceKind
	n    int
	key  string
}

// userDevices lists the devices of the user with userKey, in
// reauth.DeviceKinds order: DevicesPerKind of each kind, or as many as
// DeviceMix draws.
func userDevices(c Config, userKey string) []userDevice {
	var out []userDevice
	if len(c.DeviceMix) == 0 {
		for _, kind := range reauth.DeviceKinds {
			for k := 1; k <= c.DevicesPerKind; k++ {
				out = append(out, userDevice{kind, k, fmt.Sprintf("%s/%s/%d", userKey, kind, k)})
			}
		}
		return out
	}
	drawn := c.DeviceMix.devices(userKey)
	for _, kind := range reauth.DeviceKinds {
		n := 0
		for i, k := range drawn {
			if k == kind {
				n++
				out = append(out, userDevice{kind, n, fmt.Sprintf("%s/mix/%d", userKey, i+1)})
			}
		}
	}
	return out
}

func kindTitle(k reauth.DeviceKind) string {
	switch k {
	case reauth.Inverter:
		return "Inverter"
	case reauth.ElectricVehicle:
		return "Electric vehicle"
	case reauth.Wallbox:
		return "Wallbox"
	}
	return string(k)
}

// State returns a snapshot of every org, user and device.
func (s *Server) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{Orgs: []Org{}}
	for _, o := range s.orgs {
		so := Org{ID: o.id, Users: []User{}}
		for _, u := range o.users {
			su := User{ID: u.id, Email: u.email, ExternalUserID: u.externalID, Devices: []Device{}}
			for _, d := range u.devices {
				su.Devices = append(su.Devices, d.snapshot())
			}
			so.Users = append(so.Users, su)
		}
		st.Orgs = append(st.Orgs, so)
	}
	return st
}

// snapshot is d's public form; the caller holds s.mu.
func (d *device) snapshot() Device {
	return Device{
		ID:              d.id,
		Kind:            d.kind,
		Manufacturer:    d.product.manufacturer,
		Model:           d.product.model,
		IsAuthenticated: d.authenticated,
		ActionNeeded:    !d.authenticated,
		Sessions:        d.sessions,
	}
}

// findDevice returns the device id of kind kind owned by user userID of org
// orgID, or nil; the caller holds s.mu.
func (s *Server) findDevice(orgID, userID string, kind reauth.DeviceKind, id string) *device {
	d := s.devices[id]
	if d == nil || d.orgID != orgID || d.userID != userID || d.kind != kind {
		return nil
	}
	return d
}

// nameUUID derives a UUID from name: the first 16 bytes of its SHA-256 with
// the version-4 and RFC 4122 variant bits set, so it looks like any other
// random UUID.
func nameUUID(name string) string {
	sum := sha256.Sum256([]byte(name))
	return formatUUID(sum[:16])
}

// randomUUID returns a random version-4 UUID.
func randomUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return formatUUID(b)
}

// formatUUID sets the version-4 and variant bits of the 16 bytes b and
// formats them canonically.
func formatUUID(b []byte) string {
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// normUUID lower-cases a UUID so lookups ignore case, as Podero's parsed
// UUID path parameters do.
func normUUID(s string) string { return strings.ToLower(s) }

// fraction maps key to a number in [0, 1), the same every time.
func fraction(key string) float64 {
	h := sha256.Sum256([]byte("healthy/" + key))
	return float64(binary.BigEndian.Uint64(h[:8])>>11) / (1 << 53)
}
