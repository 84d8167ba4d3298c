package sim

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ConnectHostPrefix is the label DefaultConnectURL puts before "localhost".
const ConnectHostPrefix = "connect."

// DefaultConnectURL is where the simulator at base (e.g.
// "http://127.0.0.1:8090") points authentication links when
// Config.ConnectURL is empty: like Podero, whose API is on app.podero.com
// and whose Connect UI on connect.podero.com, a host other than the API's.
// For an API on a loopback address or localhost it is
// "http://connect.localhost:PORT", the same listener under another name
// (browsers and curl resolve every *.localhost name to loopback; Go programs
// need LocalhostClient). For any other host it is base itself.
func DefaultConnectURL(base string) string {
	base = strings.TrimRight(base, "/")
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return base
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); !strings.EqualFold(host, "localhost") && (ip == nil || !ip.IsLoopback()) {
		return base
	}
	port := u.Port()
	u.Host = ConnectHostPrefix + "localhost"
	if port != "" {
		u.Host += ":" + port
	}
	return u.String()
}

// connectURL is the root of the authentication links handed out for r.
func (s *Server) connectURL(r *http.Request) string {
	if s.cfg.ConnectURL != "" {
		return s.cfg.ConnectURL
	}
	return DefaultConnectURL(s.baseURL(r))
}

// LocalhostClient returns an HTTP client, following redirects, that dials
// every *.localhost name (and localhost) at 127.0.0.1, as browsers and curl
// do (RFC 6761) and Go's resolver does not everywhere: for Go code that
// follows the simulator's links to its connect host.
func LocalhostClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, port, err := net.SplitHostPort(addr); err == nil {
			if h := strings.ToLower(strings.TrimSuffix(host, ".")); h == "localhost" || strings.HasSuffix(h, ".localhost") {
				addr = net.JoinHostPort("127.0.0.1", port)
			}
		}
		return d.DialContext(ctx, network, addr)
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}
