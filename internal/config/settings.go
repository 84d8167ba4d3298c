package config

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/reauth/reauth/internal/sendwindow"
)

// A setting is one environment variable, declared once: its name, which
// commands need it, its default (as docs/configuration.md writes it), a
// one-line doc, whether the startup log masks it, and how it is read into
// a Config, checked for being set, and shown in the startup log.
type setting struct {
	name string
	// needs is which commands cannot run without it: "all", "serve" or "".
	needs string
	// def is the default as docs/configuration.md writes it, "" for none.
	def string
	doc string
	// secret: the startup log shows it masked (or only a URL's host).
	secret bool

	load  func(e *env, c *Config)
	isSet func(c *Config) bool
	show  func(c *Config) slog.Value
}

// bind makes a setting of a Config field of type T: parse reads a non-empty
// value (its error names the variable), def gives the default for an empty
// or unparsable one (nil: T's zero value), show prints it for the startup
// log.
func bind[T any](name, doc, docDef string, field func(*Config) *T, parse func(name, v string) (T, error),
	def func(*Config) T, isSet func(T) bool, show func(T) slog.Value) setting {
	return setting{name: name, doc: doc, def: docDef,
		load: func(e *env, c *Config) {
			p := field(c)
			if v := e.str(name); v != "" {
				x, err := parse(name, v)
				if err == nil {
					*p = x
					return
				}
				e.errs = append(e.errs, err)
			}
			if def != nil {
				*p = def(c)
			}
		},
		isSet: func(c *Config) bool { return isSet(*field(c)) },
		show:  func(c *Config) slog.Value { return show(*field(c)) },
	}
}

// required marks s as needed by a command: "all" or "serve".
func required(cmd string, s setting) setting { s.needs = cmd; return s }

// The settings by kind of value.

func strVar(name, doc string, field func(*Config) *string) setting {
	return bind(name, doc, "", field, parseStr, nil, nonEmpty, slog.StringValue)
}

// strVarDef is a string with a default.
func strVarDef(name, doc, def string, field func(*Config) *string) setting {
	return bind(name, doc, def, field, parseStr, func(*Config) string { return def }, nonEmpty, slog.StringValue)
}

// urlVar is a URL whose trailing slashes are dropped.
func urlVar(name, doc string, field func(*Config) *string) setting {
	return bind(name, doc, "", field, func(_, v string) (string, error) { return strings.TrimRight(v, "/"), nil },
		nil, nonEmpty, slog.StringValue)
}

// secretVar is a Secret, shown through mask (nil: masked whole).
func secretVar(name, doc string, field func(*Config) *Secret, mask func(string) string) setting {
	show := func(s Secret) slog.Value { return s.LogValue() }
	if mask != nil {
		show = func(s Secret) slog.Value { return slog.StringValue(mask(s.Reveal())) }
	}
	s := bind(name, doc, "", field, func(_, v string) (Secret, error) { return Secret(v), nil },
		nil, func(s Secret) bool { return s != "" }, show)
	s.secret = true
	return s
}

func durVar(name, doc string, def time.Duration, field func(*Config) *time.Duration) setting {
	return bind(name, doc, docDuration(def), field, parseDuration, func(*Config) time.Duration { return def },
		func(d time.Duration) bool { return d != 0 }, durValue)
}

func intVar(name, doc string, def int, field func(*Config) *int) setting {
	return bind(name, doc, strconv.Itoa(def), field, parseInt, func(*Config) int { return def },
		func(n int) bool { return n != 0 }, func(n int) slog.Value { return slog.IntValue(n) })
}

func floatVar(name, doc string, def float64, field func(*Config) *float64) setting {
	return bind(name, doc, strconv.FormatFloat(def, 'g', -1, 64), field, parseFloat, func(*Config) float64 { return def },
		func(f float64) bool { return f != 0 }, slog.Float64Value)
}

// listVar is a comma-separated list.
func listVar(name, doc string, field func(*Config) *[]string) setting {
	return bind(name, doc, "", field, func(_, v string) ([]string, error) { return splitList(v), nil },
		nil, func(l []string) bool { return len(l) > 0 }, func(l []string) slog.Value { return slog.AnyValue(l) })
}

func nonEmpty(s string) bool                                      { return s != "" }
func parseStr(_, v string) (string, error)                        { return v, nil }
func durValue(d time.Duration) slog.Value                         { return slog.StringValue(d.String()) }
func countValue[T any](l []T) slog.Value                          { return slog.IntValue(len(l)) }
func withDef(s setting, def string) setting                       { s.def = def; return s }
func withShow(s setting, show func(c *Config) slog.Value) setting { s.show = show; return s }

func parseDuration(name, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s must be a duration like 30s, 15m or 24h", name)
	}
	return d, nil
}

// parseDurations reads a comma-separated list of durations; "off" is none.
func parseDurations(name, v string) ([]time.Duration, error) {
	if v == "off" {
		return nil, nil
	}
	var out []time.Duration
	for _, p := range splitList(v) {
		d, err := time.ParseDuration(p)
		if err != nil {
			return nil, fmt.Errorf("%s must be durations like 24h,72h, or off", name)
		}
		out = append(out, d)
	}
	return out, nil
}

func parseWindow(name, v string) (sendwindow.Window, error) {
	w, err := sendwindow.Parse(v)
	if err != nil {
		return w, fmt.Errorf("%s: %w", name, err)
	}
	return w, nil
}

func parseZone(name, v string) (*time.Location, error) {
	loc, err := sendwindow.LoadZone(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return loc, nil
}

func parseFloat(name, v string) (float64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("%s must be a number", name)
	}
	return f, nil
}

func parseInt(name, v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s must be a whole number", name)
	}
	return n, nil
}

func parseLevel(name, v string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(v)); err != nil {
		return 0, fmt.Errorf("%s must be debug, info, warn or error", name)
	}
	return l, nil
}

// docDuration writes d as the docs do: 24h, 30m, 15s, 1h30m.
func docDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func docDurations(ds []time.Duration) string {
	var out []string
	for _, d := range ds {
		out = append(out, docDuration(d))
	}
	return strings.Join(out, ",")
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
