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
	"bytes"
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
	d := sim.DefaultConfig()
	fs := flag.NewFlagSet("podero-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: podero-sim [flags]

Serves a stateful simulator of Podero's Partner API: OAuth2 token endpoints,
users, devices and their auth_session endpoints, a connect page for the end
user, and an admin API under /_sim/ (state, counts, scripted failures).

Flags override the -config file, which overrides the defaults.

Flags:
`)
		fs.PrintDefaults()
	}
	var (
		addr       string
		configFile string
		f          sim.Config // flag values; only flags given on the command line are used
	)
	fs.StringVar(&addr, "addr", "127.0.0.1:8090", "`address` to listen on; port 0 picks a free one")
	fs.StringVar(&configFile, "config", "", "JSON `file` with the fields of sim.Config: seed, orgs, users_per_org,\ndevices_per_kind, client_id, client_secret, username, password,\ntoken_ttl and latency (\"10h\" or seconds), base_url")
	fs.StringVar(&f.Seed, "seed", d.Seed, "seed of the deterministic org, user and device ids")
	fs.IntVar(&f.Orgs, "orgs", d.Orgs, "number of organizations")
	fs.IntVar(&f.UsersPerOrg, "users", d.UsersPerOrg, "number of users per organization")
	fs.IntVar(&f.DevicesPerKind, "devices", d.DevicesPerKind, "devices of each kind (inverter, electric_vehicle, wallbox) per user")
	fs.StringVar(&f.ClientID, "client-id", d.ClientID, "the OAuth2 client id accepted")
	fs.StringVar(&f.ClientSecret, "client-secret", d.ClientSecret, "the OAuth2 client secret accepted")
	fs.StringVar(&f.Username, "username", d.Username, "the username accepted by the password grant")
	fs.StringVar(&f.Password, "password", d.Password, "the password accepted by the password grant")
	fs.DurationVar(&f.TokenTTL, "token-ttl", d.TokenTTL, "lifetime of an access token")
	fs.DurationVar(&f.Latency, "latency", d.Latency, "latency added to every token and partner API call (none by default)")
	fs.StringVar(&f.BaseURL, "base-url", "", "public `URL` of the simulator, used in authentication and resolution links\n(default \"http://\" + the listen address)")
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

	var cfg sim.Config
	if configFile != "" {
		var err error
		if cfg, err = loadConfig(configFile); err != nil {
			fmt.Fprintf(stderr, "podero-sim: %v\n", err)
			return 2
		}
	}
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "seed":
			cfg.Seed = f.Seed
		case "orgs":
			cfg.Orgs = f.Orgs
		case "users":
			cfg.UsersPerOrg = f.UsersPerOrg
		case "devices":
			cfg.DevicesPerKind = f.DevicesPerKind
		case "client-id":
			cfg.ClientID = f.ClientID
		case "client-secret":
			cfg.ClientSecret = f.ClientSecret
		case "username":
			cfg.Username = f.Username
		case "password":
			cfg.Password = f.Password
		case "token-ttl":
			cfg.TokenTTL = f.TokenTTL
		case "latency":
			cfg.Latency = f.Latency
		case "base-url":
			cfg.BaseURL = f.BaseURL
		}
	})
	if cfg.Orgs < 0 || cfg.UsersPerOrg < 0 || cfg.DevicesPerKind < 0 || cfg.TokenTTL < 0 || cfg.Latency < 0 {
		fmt.Fprintln(stderr, "podero-sim: counts and durations must not be negative")
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
	log.Info("started", "addr", ln.Addr().String(), "base_url", eff.BaseURL, "seed", eff.Seed,
		"orgs", eff.Orgs, "users_per_org", eff.UsersPerOrg, "devices_per_kind", eff.DevicesPerKind,
		"token_ttl", eff.TokenTTL, "latency", eff.Latency)

	srv := &http.Server{Handler: logRequests(log, s), ReadHeaderTimeout: 10 * time.Second}
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

// loadConfig reads a JSON config file. Durations are Go durations ("10h",
// "250ms") or numbers of seconds; unknown fields are an error.
func loadConfig(path string) (sim.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return sim.Config{}, err
	}
	var fc struct {
		sim.Config
		TokenTTL *duration `json:"token_ttl"` // shadow the embedded time.Durations
		Latency  *duration `json:"latency"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return sim.Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	cfg := fc.Config
	if fc.TokenTTL != nil {
		cfg.TokenTTL = time.Duration(*fc.TokenTTL)
	}
	if fc.Latency != nil {
		cfg.Latency = time.Duration(*fc.Latency)
	}
	return cfg, nil
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
