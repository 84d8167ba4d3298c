// Package sim is a stateful, in-memory simulator of Podero's Partner API, for
// tests and demos of the reauth service.
//
// It serves the parts of the API the service uses: the OAuth2 token endpoints,
// the user and device listings and the auth_session endpoints of inverters,
// electric vehicles and wallboxes. It also serves the manufacturer "connect"
// page an end user lands on (a link to succeed and one to cancel), so a whole
// reauthentication can be played through, and a small admin API under /_sim/
// to inspect the state and script failures.
//
// For chaos tests it injects faults at random into partner API calls (see
// Faults), enforces a rate limit of its own and counts what happened (see
// Stats).
//
// Everything is deterministic from Config.Seed except tokens and session ids,
// which are random like the real ones. The faults are deterministic from
// Config.FaultSeed, given the order in which the calls arrive.
package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/reauth/reauth"
)

// Config configures a Server. Zero fields take the values of DefaultConfig.
// The JSON names are the ones podero-sim's -config file uses.
type Config struct {
	// Seed makes the ids of orgs, users and devices: the same seed gives the
	// same ids.
	Seed string `json:"seed"`
	// Orgs is the number of organizations.
	Orgs int `json:"orgs"`
	// UsersPerOrg is the number of users in each organization.
	UsersPerOrg int `json:"users_per_org"`
	// DevicesPerKind is the number of devices of each kind (inverter,
	// electric_vehicle, wallbox) of each user.
	DevicesPerKind int `json:"devices_per_kind"`
	// DeviceMix, when set, replaces DevicesPerKind: the share of users with
	// 0, 1, 2, ... devices of kinds drawn from the seed (see DeviceMix).
	DeviceMix DeviceMix `json:"device_mix"`
	// Healthy is the fraction of devices (0 to 1) that start authenticated,
	// chosen deterministically from the seed; the rest start lapsed. The
	// default 0 starts every device lapsed.
	Healthy float64 `json:"healthy"`
	// ClientID and ClientSecret are the only client credentials accepted.
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	// Username and Password are the resource-owner credentials of the
	// password grant.
	Username string `json:"username"`
	Password string `json:"password"`
	// TokenTTL is how long an access token is valid.
	TokenTTL time.Duration `json:"token_ttl"`
	// BaseURL is the simulator's public URL, used to build authentication
	// and resolution links, e.g. "http://127.0.0.1:8090". When empty it is
	// taken from each request's Host header.
	BaseURL string `json:"base_url"`
	// ConnectURL is where authentication links point, the stand-in for
	// Podero's Connect UI (connect.podero.com): a host of its own, so that a
	// client must allow it (PODERO_LINK_HOSTS) as it must allow Podero's.
	// The connect pages answer on any host of the same listener. When empty
	// it is DefaultConnectURL of the base URL: http://connect.localhost:PORT
	// when the API is on a loopback address or localhost.
	ConnectURL string `json:"connect_url"`
	// Latency is added to every token and partner API call (not to the
	// connect page nor the admin API).
	Latency time.Duration `json:"latency"`
	// Faults are the faults injected into partner API calls and the rate
	// limit; SetFaults changes them later.
	Faults Faults `json:"faults"`
	// FaultSeed seeds the draws of the faults (0 means 1).
	FaultSeed uint64 `json:"fault_seed"`
	// Now is the clock of the rate limit, of Stats.PerSecond and of
	// Retry-After dates (default time.Now). Token expiry uses the real
	// clock.
	Now func() time.Time `json:"-"`
}

// DefaultConfig returns the configuration New uses for zero fields.
func DefaultConfig() Config {
	return Config{
		Seed:           "demo",
		Orgs:           1,
		UsersPerOrg:    3,
		DevicesPerKind: 1,
		ClientID:       "sim-client",
		ClientSecret:   "sim-secret",
		Username:       "sim-user",
		Password:       "sim-password",
		TokenTTL:       10 * time.Hour,
		Faults:         Faults{}.withDefaults(),
		FaultSeed:      1,
	}
}

// withDefaults fills zero (and negative) fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Seed == "" {
		c.Seed = d.Seed
	}
	if c.Orgs <= 0 {
		c.Orgs = d.Orgs
	}
	if c.UsersPerOrg <= 0 {
		c.UsersPerOrg = d.UsersPerOrg
	}
	if c.DevicesPerKind <= 0 {
		c.DevicesPerKind = d.DevicesPerKind
	}
	if c.ClientID == "" {
		c.ClientID = d.ClientID
	}
	if c.ClientSecret == "" {
		c.ClientSecret = d.ClientSecret
	}
	if c.Username == "" {
		c.Username = d.Username
	}
	if c.Password == "" {
		c.Password = d.Password
	}
	if c.TokenTTL <= 0 {
		c.TokenTTL = d.TokenTTL
	}
	if c.Latency < 0 {
		c.Latency = 0
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	c.ConnectURL = strings.TrimRight(c.ConnectURL, "/")
	c.Faults = c.Faults.withDefaults()
	if c.FaultSeed == 0 {
		c.FaultSeed = d.FaultSeed
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Endpoint names, the keys of Counts.
const (
	EndpointToken       = "token"
	EndpointAuthSession = "auth_session"
	EndpointListUsers   = "list_users"
	EndpointListDevices = "list_devices"
	EndpointUserByExtID = "user_by_ext_id"
	EndpointGetDevice   = "get_device"
	EndpointConnect     = "connect"
)

// endpointNames lists every endpoint name in a stable order.
func endpointNames() []string {
	return []string{EndpointToken, EndpointAuthSession, EndpointListUsers, EndpointUserByExtID, EndpointListDevices, EndpointGetDevice, EndpointConnect}
}

// Server is the simulator. It is an http.Handler; all its state is guarded
// by mu.
type Server struct {
	cfg      Config
	mux      *http.ServeMux
	pageTmpl *template.Template // the connect pages

	mu       sync.Mutex
	orgs     []*org                // in seeding order
	orgByID  map[string]*org       // by id
	users    map[string]*user      // by id
	devices  map[string]*device    // by id
	tokens   map[string]time.Time  // access token -> expiry
	sessions map[string]*session   // by session id
	scripts  map[string][]Response // device id -> queued auth_session answers
	counts   map[string]int        // endpoint name -> requests

	// Faults and their accounting (see arrive).
	faults          Faults         // in effect, defaults filled in
	rng             *rand.Rand     // draws the faults
	injected        map[string]int // fault kind -> faults injected
	bucket          float64        // tokens left in the rate-limit bucket
	bucketAt        time.Time      // when bucket was last refilled
	violations      int            // calls that found the bucket empty
	perSecond       map[int64]int  // Unix second -> partner API calls
	maxPerSecond    int
	sessionsCreated int
}

// New returns a simulator seeded from cfg (zero fields take defaults). It
// panics on cfg.Faults that Faults.Validate rejects, and on a cfg.DeviceMix
// that DeviceMix.Validate rejects.
func New(cfg Config) *Server {
	if err := cfg.Faults.Validate(); err != nil {
		panic("sim: New: faults: " + err.Error())
	}
	if err := cfg.DeviceMix.Validate(); err != nil {
		panic("sim: New: " + err.Error())
	}
	s := &Server{
		cfg:      cfg.withDefaults(),
		mux:      http.NewServeMux(),
		pageTmpl: parsePage(),
		orgByID:  map[string]*org{},
		users:    map[string]*user{},
		devices:  map[string]*device{},
		tokens:   map[string]time.Time{},
		sessions: map[string]*session{},
		scripts:  map[string][]Response{},
		counts:   map[string]int{},

		injected:  map[string]int{},
		perSecond: map[int64]int{},
	}
	s.rng = rand.New(rand.NewPCG(s.cfg.FaultSeed, s.cfg.FaultSeed))
	s.setFaults(s.cfg.Faults)
	s.seed()

	const api = "/api/partners/v2.0"
	const userPath = api + "/org/{org_id}/users/{user_id}"
	s.route("POST "+api+"/auth/token", EndpointToken, true, s.handleToken)
	s.route("POST /oauth2/token/{$}", EndpointToken, true, s.handleToken)
	s.route("POST /oauth2/token", EndpointToken, true, s.handleToken)
	s.route("GET "+api+"/org/{org_id}/users", EndpointListUsers, true, s.handleListUsers)
	s.route("GET "+api+"/org/{org_id}/users/by-ext-id/{external_id}", EndpointUserByExtID, true, s.handleUserByExtID)
	s.route("GET "+userPath+"/{collection}", EndpointListDevices, true, s.handleListDevices)
	s.route("GET "+userPath+"/{collection}/{device_id}", EndpointGetDevice, true, s.handleGetDevice)
	s.route("POST "+userPath+"/{collection}/{device_id}/auth_session", EndpointAuthSession, true, s.handleAuthSession)
	s.route("GET /connect/{session_id}", EndpointConnect, false, s.handleConnectSession)
	s.route("GET /connect/device/{device_id}", EndpointConnect, false, s.handleConnectDevice)
	s.route("GET /_sim/state", "", false, s.handleAdminState)
	s.route("GET /_sim/counts", "", false, s.handleAdminCounts)
	s.route("GET /_sim/stats", "", false, s.handleAdminStats)
	s.route("GET /_sim/faults", "", false, s.handleAdminFaults)
	s.route("PUT /_sim/faults", "", false, s.handleAdminSetFaults)
	s.route("POST /_sim/devices/{device_id}/script", "", false, s.handleAdminScript)
	s.route("POST /_sim/devices/{device_id}/lapse", "", false, s.handleAdminLapse)
	s.route("POST /_sim/devices/{device_id}/login_does_not_take", "", false, s.handleAdminLoginDoesNotTake)
	return s
}

// route registers h for pattern. Requests are counted under name (unless it
// is empty) before anything else. Partner API routes (api) then meet the
// rate limit and the faults, decided on arrival, and the configured latency
// before they are answered.
func (s *Server) route(pattern, name string, api bool, h http.HandlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if !api {
			if name != "" {
				s.mu.Lock()
				s.counts[name]++
				s.mu.Unlock()
			}
			h(w, r)
			return
		}
		d := s.arrive(name, r)
		if s.cfg.Latency > 0 && !sleep(r.Context(), s.cfg.Latency) {
			return // the client went away
		}
		if d.limited {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusTooManyRequests, detail{"Too Many Requests"})
			return
		}
		if s.inject(w, r, name, d) {
			return
		}
		h(w, r)
	})
}

// Config returns the configuration in effect, defaults filled in, with the
// faults SetFaults may have set since.
func (s *Server) Config() Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cfg
	c.Faults = s.faults
	return c
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Counts returns the number of requests per endpoint name ("token",
// "auth_session", "list_users", "list_devices", "get_device", "connect"),
// failed ones included. Every name is present.
func (s *Server) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.countsLocked()
}

// countsLocked is Counts; the caller holds s.mu.
func (s *Server) countsLocked() map[string]int {
	out := map[string]int{}
	for _, name := range endpointNames() {
		out[name] = s.counts[name]
	}
	return out
}

// baseURL is the configured BaseURL or, without one, the request's own host.
func (s *Server) baseURL(r *http.Request) string {
	if s.cfg.BaseURL != "" {
		return s.cfg.BaseURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, fmt.Sprintf("sim: encoding response: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// detail is Django Ninja's error body for anything but validation errors.
type detail struct {
	Detail string `json:"detail"`
}

func notFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, detail{"Not Found"})
}

// kindOf maps a collection path segment ("inverters", ...) to its device kind.
func kindOf(collection string) (reauth.DeviceKind, bool) {
	switch collection {
	case "inverters":
		return reauth.Inverter, true
	case "electric-vehicles":
		return reauth.ElectricVehicle, true
	case "wallboxes":
		return reauth.Wallbox, true
	}
	return "", false
}
