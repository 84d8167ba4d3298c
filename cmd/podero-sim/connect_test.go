package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/podero/sim"
)

// TestConnectURL runs the program in-process and checks where its
// authentication links point: its own connect host by default, -connect-url
// when given.
func TestConnectURL(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		args  []string
		want  func(base string) string
		check string // in the startup log
	}{
		{"Default", nil, sim.DefaultConnectURL, "connect_url=http://connect.localhost:"},
		{"Flag", []string{"-connect-url", "https://connect.sim.example/"}, func(string) string { return "https://connect.sim.example" }, "connect_url=https://connect.sim.example"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			outR, outW := io.Pipe()
			var stderr syncWriter
			code := make(chan int, 1)
			go func() {
				code <- run(ctx, append([]string{"-addr", "127.0.0.1:0", "-quiet", "-seed", "connect"}, tt.args...), outW, &stderr)
				outW.Close()
			}()
			t.Cleanup(func() {
				cancel()
				require.Equal(t, 0, <-code)
			})
			line, err := bufio.NewReader(outR).ReadString('\n')
			require.NoError(t, err)
			go func() { _, _ = io.Copy(io.Discard, outR) }()
			base, ok := strings.CutPrefix(strings.TrimSpace(line), "podero-sim listening on ")
			require.True(t, ok, line)

			var st sim.State
			getJSON(t, base+"/_sim/state", "", &st)
			u := st.Orgs[0].Users[0]
			req, _ := http.NewRequest(http.MethodPost, base+"/api/partners/v2.0/org/"+st.Orgs[0].ID+"/users/"+u.ID+"/inverters/"+u.Devices[0].ID+"/auth_session", strings.NewReader(`{}`))
			req.Header.Set("Authorization", "Bearer "+token(t, base))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			var out struct {
				AuthenticationURL string `json:"authentication_url"`
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
			require.True(t, strings.HasPrefix(out.AuthenticationURL, tt.want(base)+"/connect/"), out.AuthenticationURL)
			require.Contains(t, stderr.String(), tt.check, "logged at startup, before the first request is served")
		})
	}
}

// syncWriter is an io.Writer safe for the program's logger and the test.
type syncWriter struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
