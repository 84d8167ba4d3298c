// Command podero-sim serves the Podero Partner API simulator
// (internal/podero/sim) over HTTP, for local runs, demos and end-to-end tests.
//
// It listens first, then prints exactly one line to stdout:
//
//	podero-sim listening on http://HOST:PORT
//
// logs every request to stderr and shuts down cleanly on SIGINT or SIGTERM.
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/reauth/reauth/internal/podero/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program; it returns the exit code: 0 after a clean
// shutdown (when ctx is done) or -h, 2 for bad usage, 1 for other failures.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("podero-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: podero-sim [flags]

Serves a stateful simulator of Podero's Partner API: OAuth2 token endpoints,
users, devices and their auth_session endpoints, a connect page for the end
user, and an admin API under /_sim/ (state, counts, stats, faults, scripted
failures).

The -fault-* flags inject failures at random into partner API calls (token
endpoints and /api/...): each is a probability per call, together at most 1,
and a call gets at most one fault. -rate-limit enforces a limit of the
simulator's own; GET /_sim/stats counts the faults, the calls over the limit
and the calls per second. PUT /_sim/faults changes the faults while running.

Flags override the -config file, which overrides the defaults.

Flags:
`)
		fs.PrintDefaults()
	}
	// Flags override the -config file, which overrides the defaults: the
	// file is read first and its values become the flags' defaults.
	cfg := sim.DefaultConfig()
	configFile := configArg(args)
	if configFile != "" {
		if err := loadConfig(configFile, &cfg); err != nil {
			fmt.Fprintf(stderr, "podero-sim: %v\n", err)
			return 2
		}
	}
	var addr string
	fs.StringVar(&addr, "addr", "127.0.0.1:8090", "`address` to listen on; port 0 picks a free one")
	quiet := fs.Bool("quiet", false, "do not log every request (for benchmarks)")
	fs.StringVar(&configFile, "config", configFile, "JSON `file` with the fields of sim.Config: seed, orgs, users_per_org,\ndevices_per_kind, device_mix (e.g. [0.3, 0.4, 0.2, 0.1]), client_id, client_secret,\nusername, password, token_ttl and latency (\"10h\" or seconds), base_url, connect_url,\nfault_seed and faults: {error_5xx, rate_limited, hang, reset, malformed_json, null_fields,\nforeign_host, revoke_tokens, retry_after, hang_for, rate_limit, rate_burst}")
	fs.StringVar(&cfg.Seed, "seed", cfg.Seed, "seed of the deterministic org, user and device ids")
	fs.IntVar(&cfg.Orgs, "orgs", cfg.Orgs, "number of organizations")
	fs.IntVar(&cfg.UsersPerOrg, "users", cfg.UsersPerOrg, "number of users per organization")
	fs.IntVar(&cfg.DevicesPerKind, "devices", cfg.DevicesPerKind, "devices of each kind (inverter, electric_vehicle, wallbox) per user")
	fs.Var(&cfg.DeviceMix, "device-mix", "`shares` of users with 0, 1, 2, ... devices, e.g. 0.3,0.4,0.2,0.1 (adding up to 1),\neach device's kind drawn from the seed; replaces -devices")
	fs.Float64Var(&cfg.Healthy, "healthy", cfg.Healthy, "`fraction` of devices that start authenticated (0: all start lapsed)")
	fs.StringVar(&cfg.ClientID, "client-id", cfg.ClientID, "the OAuth2 client id accepted")
	fs.StringVar(&cfg.ClientSecret, "client-secret", cfg.ClientSecret, "the OAuth2 client secret accepted")
	fs.StringVar(&cfg.Username, "username", cfg.Username, "the username accepted by the password grant")
	fs.StringVar(&cfg.Password, "password", cfg.Password, "the password accepted by the password grant")
	fs.DurationVar(&cfg.TokenTTL, "token-ttl", cfg.TokenTTL, "lifetime of an access token")
	fs.DurationVar(&cfg.Latency, "latency", cfg.Latency, "latency added to every token and partner API call (none by default)")
	fs.StringVar(&cfg.BaseURL, "base-url", cfg.BaseURL, "public `URL` of the simulator's API, used in resolution links\n(default \"http://\" + the listen address)")
	fs.StringVar(&cfg.ConnectURL, "connect-url", cfg.ConnectURL, "public `URL` of the connect pages, where authentication links point, a host\nother than the API's as connect.podero.com is (default http://connect.localhost:PORT\nwhen -base-url is on loopback or localhost, else -base-url); clients must allow it\n(PODERO_LINK_HOSTS)")
	fs.Float64Var(&cfg.Faults.Error5xx, "fault-5xx", cfg.Faults.Error5xx, "`probability` of answering a partner API call 500, 502 or 503 (in turn)")
	fs.Float64Var(&cfg.Faults.RateLimited, "fault-429", cfg.Faults.RateLimited, "`probability` of answering 429 with a Retry-After of -retry-after,\nin seconds and as an HTTP date in turn")
	fs.Float64Var(&cfg.Faults.Hang, "fault-hang", cfg.Faults.Hang, "`probability` of waiting -fault-hang-for before answering")
	fs.DurationVar(&cfg.Faults.HangFor, "fault-hang-for", cfg.Faults.HangFor, "how long a -fault-hang call waits")
	fs.Float64Var(&cfg.Faults.Reset, "fault-reset", cfg.Faults.Reset, "`probability` of resetting the connection (TCP RST) instead of answering")
	fs.Float64Var(&cfg.Faults.MalformedJSON, "fault-malformed", cfg.Faults.MalformedJSON, "`probability` of answering 200 with truncated JSON")
	fs.Float64Var(&cfg.Faults.NullFields, "fault-null", cfg.Faults.NullFields, "`probability` of an auth_session 200 with authentication_url and/or\nsession_id null")
	fs.Float64Var(&cfg.Faults.ForeignHost, "fault-foreign", cfg.Faults.ForeignHost, "`probability` of an auth_session 200 whose authentication_url is on\nhttps://evil.example")
	fs.Float64Var(&cfg.Faults.RevokeTokens, "fault-revoke", cfg.Faults.RevokeTokens, "`probability` of revoking every access token issued before handling a call")
	fs.DurationVar(&cfg.Faults.RetryAfter, "retry-after", cfg.Faults.RetryAfter, "Retry-After of -fault-429 answers")
	fs.Uint64Var(&cfg.FaultSeed, "fault-seed", cfg.FaultSeed, "seed of the fault draws")
	fs.Float64Var(&cfg.Faults.RateLimit, "rate-limit", cfg.Faults.RateLimit, "the simulator's own limit in partner API `requests` per second, over all\nclients (0: none); calls over it get 429 and count as violations")
	fs.IntVar(&cfg.Faults.RateBurst, "rate-burst", cfg.Faults.RateBurst, "burst of -rate-limit (default -rate-limit rounded up)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "podero-sim: unexpected arguments: %q\n", fs.Args())
		return 2
	}
	if cfg.Orgs < 0 || cfg.UsersPerOrg < 0 || cfg.DevicesPerKind < 0 || cfg.TokenTTL < 0 || cfg.Latency < 0 {
		fmt.Fprintln(stderr, "podero-sim: counts and durations must not be negative")
		return 2
	}
	if err := cfg.Faults.Validate(); err != nil {
		fmt.Fprintf(stderr, "podero-sim: faults: %v\n", err)
		return 2
	}
	if err := cfg.DeviceMix.Validate(); err != nil {
		fmt.Fprintf(stderr, "podero-sim: %v\n", err)
		return 2
	}

	log := slog.New(slog.NewTextHandler(stderr, nil))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Error("listen", "addr", addr, "err", err)
		return 1
	}
	url := "http://" + reachable(ln.Addr())
	if cfg.BaseURL == "" {
		cfg.BaseURL = url
	}
	s := sim.New(cfg)
	fmt.Fprintf(stdout, "podero-sim listening on %s\n", url)
	eff := s.Config()
	log.Info("started", "addr", ln.Addr().String(), "base_url", eff.BaseURL,
		"connect_url", cmp.Or(eff.ConnectURL, sim.DefaultConnectURL(eff.BaseURL)), "seed", eff.Seed,
		"orgs", eff.Orgs, "users_per_org", eff.UsersPerOrg, "devices_per_kind", eff.DevicesPerKind, "device_mix", eff.DeviceMix.String(),
		"token_ttl", eff.TokenTTL, "latency", eff.Latency, "fault_seed", eff.FaultSeed, "faults", fmt.Sprintf("%+v", eff.Faults))

	var h http.Handler = s
	if !*quiet {
		h = logRequests(log, s)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		log.Error("serve", "err", err)
		return 1
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	return 0
}

// configArg returns the value of -config in args, "" when absent, so the
// file can be read before the other flags are defined.
func configArg(args []string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			continue
		}
		if hasValue {
			return value
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// loadConfig reads a JSON config file onto cfg: fields it names replace
// cfg's. Durations are Go durations ("10h", "250ms") or numbers of seconds;
// unknown fields are an error.
func loadConfig(path string, cfg *sim.Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	fc := struct {
		sim.Config
		TokenTTL *duration `json:"token_ttl"` // shadow the embedded time.Durations
		Latency  *duration `json:"latency"`
	}{Config: *cfg}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	*cfg = fc.Config
	if fc.TokenTTL != nil {
		cfg.TokenTTL = time.Duration(*fc.TokenTTL)
	}
	if fc.Latency != nil {
		cfg.Latency = time.Duration(*fc.Latency)
	}
	return nil
}

// duration is a time.Duration written in JSON as "10h" or as seconds.
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		*d = duration(v)
		return err
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration: want \"10h\" or seconds, got %s", b)
	}
	*d = duration(secs * float64(time.Second))
	return nil
}

// reachable is the listen address as a client can dial it: an unspecified
// host (":8090", "0.0.0.0", "::") becomes 127.0.0.1.
func reachable(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// logRequests logs every request with its status and duration (never its
// headers: they carry credentials).
func logRequests(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		log.Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"duration", time.Since(start).Round(time.Microsecond), "remote", r.RemoteAddr)
	})
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Hijack lets the simulator reset connections; such a request is logged
// with status 0: it got no answer.
func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	r.status = 0
	return http.NewResponseController(r.ResponseWriter).Hijack()
}
