// Package hostlist matches URLs against an operator's list of allowed hosts:
// the hosts Podero's links may point at, and the partner pages users may be
// sent back to.
package hostlist

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// List is a parsed list of allowed hosts. An entry is "host" or "host:port"
// (https; port 443 when none is given), "*.example.com" (https on any
// subdomain), or "http://host:port" to allow plain http on exactly that host
// and port (port 80 when none is given), as for a local simulator.
type List []pattern

type pattern struct {
	host     string // lower case; for a wildcard the suffix after "*."
	port     string
	wildcard bool
	http     bool
}

// Parse parses entries; an empty list allows nothing.
func Parse(entries []string) (List, error) {
	l := make(List, 0, len(entries))
	for _, e := range entries {
		p, err := parse(e)
		if err != nil {
			return nil, err
		}
		l = append(l, p)
	}
	return l, nil
}

func parse(s string) (pattern, error) {
	bad := fmt.Errorf("host entry %q must be host[:port], *.domain or http://host[:port]", s)
	s = strings.ToLower(strings.TrimSpace(s))
	s, plain := strings.CutPrefix(s, "http://")
	if s == "" || strings.ContainsAny(s, "/@?# ") {
		return pattern{}, bad
	}
	p := pattern{host: s, port: "443", http: plain}
	if plain {
		p.port = "80"
	}
	if h, port, err := net.SplitHostPort(s); err == nil {
		p.host, p.port = h, port
	}
	if suffix, ok := strings.CutPrefix(p.host, "*."); ok {
		p.host, p.wildcard = suffix, true
	}
	if p.host == "" || strings.Contains(p.host, "*") || p.port == "" {
		return pattern{}, bad
	}
	return p, nil
}

// Allows reports whether u is an absolute URL without user info on a host,
// port and scheme the list allows.
func (l List) Allows(u *url.URL) bool {
	if u == nil || u.User != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return false
	}
	for _, p := range l {
		if p.matches(u) {
			return true
		}
	}
	return false
}

// AllowsString parses raw and reports whether the list allows it.
func (l List) AllowsString(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && l.Allows(u)
}

func (p pattern) matches(u *url.URL) bool {
	if (u.Scheme == "http") != p.http {
		return false
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if port != p.port {
		return false
	}
	host := strings.ToLower(u.Hostname())
	if p.wildcard {
		return strings.HasSuffix(host, "."+p.host)
	}
	return host == p.host
}

// Check returns an error naming field when raw is set and the list does not
// allow it.
func (l List) Check(field, raw string) error {
	if raw == "" || l.AllowsString(raw) {
		return nil
	}
	return fmt.Errorf("%s must be an https URL on a host in REDIRECT_HOSTS", field)
}
