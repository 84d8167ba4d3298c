package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/httpapi"
	"github.com/reauth/reauth/internal/link"
	"github.com/reauth/reauth/internal/mailcatch"
	"github.com/reauth/reauth/internal/notify"
	"github.com/reauth/reauth/internal/podero"
	"github.com/reauth/reauth/internal/podero/sim"
	"github.com/reauth/reauth/internal/testdb"
	"github.com/reauth/reauth/internal/worker"
)

// The pipeline tests (pipeline_*_test.go) run the whole service in this
// process rather than as built binaries: the workers' River client, the
// HTTP API, the Podero simulator and the mail catcher, on a real database,
// so that a test can move the clock, script Podero and swap a channel. The
// workers' own unit tests, with fakes, are in internal/worker.

// pipelineToken is the API token the pipeline tests' HTTP API accepts.
const pipelineToken = "test-api-token-0123456789"

type testBundle struct {
	pool   *pgxpool.Pool
	river  *river.Client[pgx.Tx]
	sim    *sim.Server
	simURL string
	mails  *mailcatch.Server
	api    *httptest.Server
	user   sim.User
	org    string
}

// setup wires the real pipeline in-process: real Postgres, the simulator,
// the mail catcher, the River client and the HTTP API. The workers are not
// started; call start.
func setup(t *testing.T, opts ...func(*worker.Config, *httpapi.Config)) *testBundle {
	t.Helper()
	b := &testBundle{pool: testdb.New(t)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	simSrv := httptest.NewUnstartedServer(nil)
	b.simURL = "http://" + simSrv.Listener.Addr().String()
	b.sim = sim.New(sim.Config{Seed: t.Name(), BaseURL: b.simURL})
	simSrv.Config.Handler = b.sim
	simSrv.Start()
	t.Cleanup(simSrv.Close)
	st := b.sim.State()
	b.org, b.user = st.Orgs[0].ID, st.Orgs[0].Users[0]

	var err error
	b.mails, err = mailcatch.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { b.mails.Close() })

	// The simulator's links are on its connect host, allowed as Podero's
	// connect.podero.com is.
	pc, err := podero.New(podero.Config{BaseURL: b.simURL, ClientID: "sim-client", ClientSecret: "sim-secret",
		LinkHosts: []string{sim.DefaultConnectURL(b.simURL)}})
	require.NoError(t, err)
	renderer, err := notify.NewRenderer("")
	require.NoError(t, err)
	email, err := notify.NewEmail(notify.EmailConfig{URL: b.mails.URL(), From: "reauth@example.test"}, renderer)
	require.NoError(t, err)
	t.Cleanup(func() { email.Close() })
	signer, err := link.NewSigner(bytes.Repeat([]byte("k"), 32))
	require.NoError(t, err)

	apiSrv := httptest.NewUnstartedServer(nil)
	// One user cache for the workers and the API, as serve wires it.
	users := &worker.UserCache{}
	wc := worker.Config{
		Pool: b.pool, Podero: pc, Users: users, Email: email, Links: signer,
		PublicBaseURL: "http://" + apiSrv.Listener.Addr().String(),
		LinkTTL:       time.Hour, PoderoWorkers: 4, NotifyWorkers: 4,
		JobTimeout: 10 * time.Second, RescueAfter: time.Minute, Logger: log,
	}
	hc := httpapi.Config{
		Pool: b.pool, Logger: log, RenewWait: 5 * time.Second, Links: signer,
		FindUser: func(ctx context.Context, org, ext string) (podero.User, error) {
			return users.ByExternalID(ctx, pc, org, ext)
		},
		Tokens: []httpapi.APIToken{{Name: "test", Scopes: []string{httpapi.ScopeEnqueue, httpapi.ScopeRead}, Hash: sha256.Sum256([]byte(pipelineToken))}},
	}
	for _, o := range opts {
		o(&wc, &hc)
	}
	b.river, err = worker.NewClient(wc)
	require.NoError(t, err)
	hc.River = b.river
	apiSrv.Config.Handler = httpapi.New(hc)
	apiSrv.Start()
	t.Cleanup(apiSrv.Close)
	b.api = apiSrv
	return b
}

func (b *testBundle) start(t *testing.T) {
	t.Helper()
	require.NoError(t, b.river.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.river.Stop(ctx)
	})
}

func (b *testBundle) device(kind reauth.DeviceKind) sim.Device {
	for _, d := range b.user.Devices {
		if d.Kind == kind {
			return d
		}
	}
	panic("no device of kind " + kind)
}

func (b *testBundle) body(d sim.Device) map[string]any {
	return map[string]any{"org_id": b.org, "user_id": b.user.ID, "device_kind": d.Kind, "device_id": d.ID}
}

// post sends POST /v1/reauth and returns the status and decoded body.
func (b *testBundle) post(t *testing.T, token string, body any) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if s, ok := body.(string); ok {
		r = strings.NewReader(s)
	} else {
		raw, err := json.Marshal(body)
		require.NoError(t, err)
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(http.MethodPost, b.api.URL+"/v1/reauth", r)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, out
}

// waitJob polls a job until it reaches state or the deadline passes.
func (b *testBundle) waitJob(t *testing.T, id int64, state string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got string
		require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT state FROM river_job WHERE id = $1", id).Scan(&got))
		if got == state {
			return
		}
		if time.Now().After(deadline) {
			var errs string
			_ = b.pool.QueryRow(context.Background(), "SELECT errors::text FROM river_job WHERE id = $1", id).Scan(&errs)
			t.Fatalf("job %d is %s, want %s: %s", id, got, state, errs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *testBundle) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

func jobID(t *testing.T, out map[string]any) int64 {
	t.Helper()
	id, ok := out["job_id"].(float64)
	require.True(t, ok, "no job_id in %v", out)
	return int64(id)
}

func randomUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	h := hex.EncodeToString(b)
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[:8], h[8:12], h[12:16], h[16:20], h[20:])
}

func TestPipeline(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("DuplicateWhilePendingNewAfterFinished", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		dev := b.device(reauth.Inverter)

		status, first := b.post(t, pipelineToken, b.body(dev))
		require.Equal(t, http.StatusAccepted, status)
		require.Equal(t, false, first["duplicate"])
		upper := b.body(dev)
		upper["device_id"] = strings.ToUpper(dev.ID) // the same device, spelled differently
		status, second := b.post(t, pipelineToken, upper)
		require.Equal(t, http.StatusAccepted, status)
		require.Equal(t, true, second["duplicate"])
		require.Equal(t, jobID(t, first), jobID(t, second))

		b.start(t)
		b.waitJob(t, jobID(t, first), "completed")
		msgs, err := b.mails.Wait(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, b.user.Email, msgs[0].To[0])
		require.Equal(t, 1, b.sim.Counts()[sim.EndpointAuthSession], "the duplicate made no second Podero call")

		// The earlier request finished: a new one is accepted and supersedes its session.
		status, third := b.post(t, pipelineToken, b.body(dev))
		require.Equal(t, http.StatusAccepted, status)
		require.Equal(t, false, third["duplicate"])
		require.NotEqual(t, jobID(t, first), jobID(t, third))
		b.waitJob(t, jobID(t, third), "completed")
		require.Equal(t, 2, b.sim.Counts()[sim.EndpointAuthSession])
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM auth_session WHERE state = 'open'"))
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM auth_session WHERE state = 'superseded'"))
	})

	t.Run("NotFoundCancelsWithReason", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.start(t)
		body := b.body(b.device(reauth.Inverter))
		unknown := randomUUID()
		body["device_id"] = unknown
		status, out := b.post(t, pipelineToken, body)
		require.Equal(t, http.StatusAccepted, status)
		b.waitJob(t, jobID(t, out), "cancelled")

		var errText string
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT errors[1] ->> 'error' FROM river_job WHERE id = $1", jobID(t, out)).Scan(&errText))
		require.Contains(t, errText, "not_found")
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM device WHERE id = $1 AND gone_at IS NOT NULL", unknown))
		require.Equal(t, 0, b.count(t, "SELECT count(*) FROM auth_session"))

		// The reason is visible through the API too.
		req, _ := http.NewRequest(http.MethodGet, b.api.URL+"/v1/devices/inverter/"+unknown, nil)
		req.Header.Set("Authorization", "Bearer "+pipelineToken)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var view struct {
			Jobs []struct {
				State     string `json:"state"`
				LastError string `json:"last_error"`
			} `json:"jobs"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&view))
		require.Len(t, view.Jobs, 1)
		require.Equal(t, "cancelled", view.Jobs[0].State)
		require.Contains(t, view.Jobs[0].LastError, "not_found")
	})

	t.Run("ServerErrorRetriedThenSucceeds", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		dev := b.device(reauth.ElectricVehicle)
		b.sim.Script(dev.ID, sim.Response{Status: http.StatusInternalServerError})
		b.start(t)
		status, out := b.post(t, pipelineToken, b.body(dev))
		require.Equal(t, http.StatusAccepted, status)
		b.waitJob(t, jobID(t, out), "completed")
		require.Equal(t, 2, b.count(t, "SELECT attempt FROM river_job WHERE id = $1", jobID(t, out)))
		var jobLog string
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT coalesce(metadata ->> 'river:log', '') FROM river_job WHERE id = $1`, jobID(t, out)).Scan(&jobLog))
		require.Contains(t, jobLog, "podero call failed", "the failed attempt's log is kept in the job's metadata")
		require.Equal(t, 2, b.sim.Counts()[sim.EndpointAuthSession])
		_, err := b.mails.Wait(ctx, 1)
		require.NoError(t, err)
	})

	t.Run("NullAuthenticationURLNeverStoredOrSent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		dev := b.device(reauth.Wallbox)
		b.sim.Script(dev.ID, sim.Response{Status: http.StatusOK, Null: []string{"authentication_url"}})
		b.start(t)
		status, out := b.post(t, pipelineToken, b.body(dev))
		require.Equal(t, http.StatusAccepted, status)
		id := jobID(t, out)
		b.waitJob(t, id, "completed") // the retry gets a good session

		var firstErr string
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT errors[1] ->> 'error' FROM river_job WHERE id = $1", id).Scan(&firstErr))
		require.Contains(t, firstErr, "malformed")
		require.Equal(t, 2, b.sim.Counts()[sim.EndpointAuthSession])
		// Only the good session was stored, and only it was sent.
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM auth_session"))
		msgs, err := b.mails.Wait(ctx, 1)
		require.NoError(t, err)
		var authURL string
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT authentication_url FROM auth_session").Scan(&authURL))
		require.True(t, strings.HasPrefix(authURL, sim.DefaultConnectURL(b.simURL)+"/connect/"), authURL)
		// The request's own job sent the one message; no notify job was needed.
		require.Zero(t, b.count(t, "SELECT count(*) FROM river_job WHERE kind = 'reauth_notify'"))
		require.Len(t, b.mails.Messages(), 1)
		require.Len(t, msgs, 1)
	})

	t.Run("BadBearerToken", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, tok := range []string{"", "wrong-token-0123456789", pipelineToken + "x"} {
			status, out := b.post(t, tok, b.body(b.device(reauth.Inverter)))
			require.Equal(t, http.StatusUnauthorized, status)
			require.Equal(t, "missing or invalid bearer token", out["error"])
		}
		require.Equal(t, 0, b.count(t, "SELECT count(*) FROM river_job"))
	})

	t.Run("MalformedBodyEnqueuesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		good := b.body(b.device(reauth.Inverter))
		with := func(k string, v any) map[string]any {
			m := map[string]any{}
			for k, v := range good {
				m[k] = v
			}
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
			return m
		}
		cases := []struct {
			name string
			body any
			want string
		}{
			{"not JSON", "{org_id:", "not valid JSON"},
			{"empty", "", "empty"},
			{"array", "[]", "must be a"},
			{"two objects", `{"org_id":"x"} {}`, "single JSON object"},
			{"unknown field", with("colour", "red"), `unknown field "colour"`},
			{"missing org", with("org_id", nil), "org_id is required"},
			{"bad uuid", with("device_id", "123"), "device_id must be a UUID"},
			{"bad kind", with("device_kind", "heat_pump"), "device_kind must be one of"},
			{"kind not a string", with("device_kind", 7), `"device_kind" must be a string`},
			{"bad email", with("email", "not-an-email"), "email must be a plain address"},
			{"bad locale", with("locale", "xx"), "locale must be one of"},
			{"bad success_url", with("success_url", "javascript:alert(1)"), "success_url"},
			{"too big", `{"reason":"` + strings.Repeat("a", httpapi.MaxBodyBytes) + `"}`, "larger than"},
		}
		for _, c := range cases {
			status, out := b.post(t, pipelineToken, c.body)
			require.Equal(t, http.StatusBadRequest, status, c.name)
			require.Contains(t, out["error"], c.want, c.name)
		}
		require.Equal(t, 0, b.count(t, "SELECT count(*) FROM river_job"))
	})
}
