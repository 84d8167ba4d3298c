package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/testdb"
)

const (
	readToken    = "reader-token-0123456789abcdef"
	enqueueToken = "writer-token-0123456789abcdef"
)

// TestHostileInput throws hostile input at every door of a running service
// (HTTP, CLI flags, CSV files, rows inserted straight into river_job) and
// checks that each gets a clear error, nothing is enqueued or stored by
// mistake, and no process crashes.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testdb.NewURL(t)
	s := newService(t, dbURL)
	tokens := fmt.Sprintf("API_TOKENS=e2e:%s,reader:read:%s,writer:enqueue:%s", apiToken, readToken, enqueueToken)
	srv := s.serve(t, tokens, "REDIRECT_HOSTS=partner.example")
	st := s.state(t)
	org, user := st.Orgs[0].ID, st.Orgs[0].Users[0]
	dev := user.Devices[0]
	valid := func(extra string) string {
		return fmt.Sprintf(`{"org_id":%q,"user_id":%q,"device_kind":%q,"device_id":%q%s}`, org, user.ID, dev.Kind, dev.ID, extra)
	}

	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	jobs := func() int {
		var n int
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM river_job").Scan(&n))
		return n
	}
	cases := 0

	// HTTP.
	type httpCase struct {
		name, method, path, token, contentType, body string
		header                                       map[string]string
		status                                       int
		want                                         string // in the body
	}
	huge := `{"reason":"` + strings.Repeat("a", 70<<10) + `"}`
	for _, c := range []httpCase{
		{name: "no token", method: "POST", path: "/v1/reauth", body: valid(""), status: 401, want: "bearer token"},
		{name: "basic auth", method: "POST", path: "/v1/reauth", body: valid(""), header: map[string]string{"Authorization": "Basic ZTJlOnB3"}, status: 401, want: "bearer token"},
		{name: "token prefix", method: "POST", path: "/v1/reauth", token: apiToken[:10], body: valid(""), status: 401, want: "bearer token"},
		{name: "read token enqueues", method: "POST", path: "/v1/reauth", token: readToken, body: valid(""), status: 403, want: "enqueue scope"},
		{name: "enqueue token reads", method: "GET", path: "/v1/devices/inverter/" + dev.ID, token: enqueueToken, status: 403, want: "read scope"},
		{name: "not JSON", method: "POST", path: "/v1/reauth", token: apiToken, body: `org_id=1`, status: 400, want: "not valid JSON"},
		{name: "array", method: "POST", path: "/v1/reauth", token: apiToken, body: `[` + valid("") + `]`, status: 400, want: "must be a"},
		{name: "two objects", method: "POST", path: "/v1/reauth", token: apiToken, body: valid("") + valid(""), status: 400, want: "single JSON object"},
		{name: "unknown field", method: "POST", path: "/v1/reauth", token: apiToken, body: valid(`,"priority":"high"`), status: 400, want: `unknown field \"priority\"`},
		{name: "key in another case", method: "POST", path: "/v1/reauth", token: apiToken, body: valid(`,"DEVICE_ID":"` + user.Devices[1].ID + `"`), status: 400, want: `unknown field \"DEVICE_ID\"`},
		{name: "key twice", method: "POST", path: "/v1/reauth", token: apiToken, body: valid(`,"device_id":"` + user.Devices[1].ID + `"`), status: 400, want: `field \"device_id\" given twice`},
		{name: "body too large", method: "POST", path: "/v1/reauth", token: apiToken, body: huge, status: 400, want: "larger than"},
		{name: "wrong content type", method: "POST", path: "/v1/reauth", token: apiToken, contentType: "text/plain", body: valid(""), status: 400, want: "Content-Type"},
		{name: "number for kind", method: "POST", path: "/v1/reauth", token: apiToken, body: strings.Replace(valid(""), `"`+string(dev.Kind)+`"`, `1`, 1), status: 400, want: `must be a string`},
		{name: "SQL in device_id", method: "POST", path: "/v1/reauth", token: apiToken, body: strings.Replace(valid(""), dev.ID, `'; DROP TABLE river_job; --`, 1), status: 400, want: "device_id must be a UUID"},
		{name: "path traversal in org_id", method: "POST", path: "/v1/reauth", token: apiToken, body: strings.Replace(valid(""), org, `../../admin`, 1), status: 400, want: "org_id must be a UUID"},
		{name: "NUL in user_id", method: "POST", path: "/v1/reauth", token: apiToken, body: strings.Replace(valid(""), user.ID, `\u0000`+user.ID[1:], 1), status: 400, want: "user_id must be a UUID"},
		{name: "heat pump", method: "POST", path: "/v1/reauth", token: apiToken, body: strings.Replace(valid(""), `"`+string(dev.Kind)+`"`, `"heat_pump"`, 1), status: 400, want: "device_kind must be one of"},
		{name: "header injection in email", method: "POST", path: "/v1/reauth", token: apiToken, body: valid(`,"email":"a@b.example\r\nBcc: all@evil.example"`), status: 400, want: "email must be a plain address"},
		{name: "display name email", method: "POST", path: "/v1/reauth", token: apiToken, body: valid(`,"email":"Eve <eve@evil.example>"`), status: 400, want: "email must be a plain address"},
		{name: "locale traversal", method: "POST", path: "/v1/reauth", token: apiToken, body: valid(`,"locale":"../../etc/passwd"`), status: 400, want: "locale must be one of"},
		{name: "javascript success_url", method: "POST", path: "/v1/reauth", token: apiToken, body: valid(`,"success_url":"javascript:alert(1)"`), status: 400, want: "success_url"},
		{name: "foreign success_url", method: "POST", path: "/v1/reauth", token: apiToken, body: valid(`,"success_url":"https://evil.example/"`), status: 400, want: "REDIRECT_HOSTS"},
		{name: "userinfo cancel_url", method: "POST", path: "/v1/reauth", token: apiToken, body: valid(`,"cancel_url":"https://partner.example@evil.example/"`), status: 400, want: "cancel_url"},
		{name: "http success_url", method: "POST", path: "/v1/reauth", token: apiToken, body: valid(`,"success_url":"http://partner.example/"`), status: 400, want: "REDIRECT_HOSTS"},
		{name: "internal address success_url", method: "POST", path: "/v1/reauth", token: apiToken, body: valid(`,"success_url":"https://169.254.169.254/latest/meta-data"`), status: 400, want: "REDIRECT_HOSTS"},
		{name: "device id not a UUID", method: "GET", path: "/v1/devices/inverter/1%20OR%201=1", token: apiToken, status: 400, want: "UUID"},
		{name: "device kind unknown", method: "GET", path: "/v1/devices/toaster/" + dev.ID, token: apiToken, status: 400, want: "device_kind"},
		{name: "unknown endpoint", method: "GET", path: "/v1/admin", token: apiToken, status: 404, want: "no such endpoint"},
		{name: "unknown link token", method: "GET", path: "/r/" + strings.Repeat("A", 43), status: 404, want: "Link not valid"},
		{name: "garbage link token", method: "GET", path: "/r/%3Cscript%3E", status: 404, want: "Link not valid"},
		{name: "done with unknown token", method: "GET", path: "/r/" + strings.Repeat("B", 43) + "/done?result=success", status: 404, want: "Link not valid"},
		{name: "huge header", method: "GET", path: "/healthz", header: map[string]string{"X-Junk": strings.Repeat("x", 64<<10)}, status: 431},
	} {
		cases++
		t.Run("HTTP/"+c.name, func(t *testing.T) {
			req, err := http.NewRequest(c.method, s.base+c.path, strings.NewReader(c.body))
			require.NoError(t, err)
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			if c.contentType != "" {
				req.Header.Set("Content-Type", c.contentType)
			}
			for k, v := range c.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body := readAll(t, resp)
			require.Equal(t, c.status, resp.StatusCode, body)
			require.Contains(t, body, c.want)
			require.NotContains(t, body, "goroutine", "no stack traces")
			require.NotContains(t, body, "SQLSTATE", "no SQL errors")
		})
	}
	require.Zero(t, jobs(), "no hostile HTTP request enqueued anything")

	// CLI flags.
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad uuid", []string{"enqueue", "-org", "x", "-user", user.ID, "-kind", "inverter", "-device", dev.ID}, 2, "org_id must be a UUID"},
		{"bad kind", []string{"enqueue", "-org", org, "-user", user.ID, "-kind", "toaster", "-device", dev.ID}, 2, "device_kind must be one of"},
		{"bad email", []string{"enqueue", "-org", org, "-user", user.ID, "-kind", "inverter", "-device", dev.ID, "-email", "x@y@z"}, 2, "email"},
		{"foreign success url", []string{"enqueue", "-org", org, "-user", user.ID, "-kind", "inverter", "-device", dev.ID, "-success-url", "https://evil.example/"}, 2, "REDIRECT_HOSTS"},
		{"unknown flag", []string{"enqueue", "-sudo"}, 2, "flag provided but not defined"},
		{"stray argument", []string{"enqueue", "-org", org, "extra"}, 2, "unexpected argument"},
		{"missing CSV", []string{"enqueue", "-csv", "/nonexistent.csv"}, 1, "open CSV"},
	} {
		cases++
		t.Run("CLI/"+c.name, func(t *testing.T) {
			p := start(t, append(append([]string{}, s.env...), "REDIRECT_HOSTS=partner.example"), "reauth", c.args...)
			require.Equal(t, c.code, p.wait(t, 30*time.Second), p.output.String())
			require.Contains(t, p.output.String(), c.want)
		})
	}
	require.Zero(t, jobs(), "no hostile command line enqueued anything")

	// CSV files: the bad rows are reported by number, the good row still goes in.
	header := "org_id,user_id,device_kind,device_id,email,success_url\n"
	goodRow := fmt.Sprintf("%s,%s,%s,%s,,\n", org, user.ID, dev.Kind, dev.ID)
	for _, c := range []struct {
		name, content string
		code          int
		want          []string
		enqueued      int
	}{
		{"empty file", "", 1, []string{"CSV header"}, 0},
		{"unknown column", "org_id,user_id,device_kind,device_id,priority\n", 1, []string{`unknown column "priority"`}, 0},
		{"missing column", "org_id,user_id,device_kind\n", 1, []string{`missing column "device_id"`}, 0},
		{"bad rows", header +
			fmt.Sprintf("not-a-uuid,%s,inverter,%s,,\n", user.ID, dev.ID) +
			fmt.Sprintf("%s,%s,heat_pump,%s,,\n", org, user.ID, dev.ID) +
			fmt.Sprintf("%s,%s,inverter,%s,=cmd|' /C calc'!A0,\n", org, user.ID, dev.ID) +
			fmt.Sprintf("%s,%s,inverter,%s,,https://evil.example/\n", org, user.ID, dev.ID) +
			fmt.Sprintf("%s,%s,inverter\n", org, user.ID) +
			"\"unterminated,quote\n", 1,
			[]string{"row 2: org_id must be a UUID", "row 3: device_kind must be one of", "row 4: email", "row 5: success_url", "row 6: 3 fields", "not valid CSV"}, 0},
		{"bad rows around a good one", header + "x,y,z,w,,\n" + goodRow, 1, []string{"row 2:", "enqueued 1, duplicates 0, rejected 1"}, 1},
	} {
		cases++
		t.Run("CSV/"+c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "in.csv")
			require.NoError(t, os.WriteFile(path, []byte(c.content), 0o600))
			before := jobs()
			p := start(t, append(append([]string{}, s.env...), "REDIRECT_HOSTS=partner.example"), "reauth", "enqueue", "-csv", path)
			require.Equal(t, c.code, p.wait(t, 30*time.Second), p.output.String())
			for _, w := range c.want {
				require.Contains(t, p.output.String(), w)
			}
			require.Equal(t, before+c.enqueued, jobs())
		})
	}

	// Rows inserted straight into river_job by another language: each is
	// cancelled with a clear error, never retried, and the worker lives on.
	rawBase := fmt.Sprintf(`"org_id":%q,"user_id":%q,"device_kind":"inverter","device_id":%q`, org, user.ID, user.Devices[1].ID)
	rows := []struct{ kind, args, want string }{
		{"reauth_device", `{"org_id":1}`, `field "org_id" must be a string`},
		{"reauth_device", `{` + rawBase + `,"priority":9}`, `unknown field "priority"`},
		{"reauth_device", `{}`, "org_id is required"},
		{"reauth_device", `[1,2,3]`, "must be a JSON object"},
		{"reauth_device", `"just a string"`, "must be a JSON object"},
		{"reauth_device", `{` + strings.Replace(rawBase, `"inverter"`, `"heat_pump"`, 1) + `}`, "device_kind must be one of"},
		{"reauth_device", `{` + rawBase + `,"success_url":"https://evil.example/"}`, "REDIRECT_HOSTS"},
		{"reauth_device", `{` + rawBase + `,"email":{"to":"x"}}`, `field "email" must be a string`},
		{"reauth_notify", `{"session_id":"1","step":0}`, `field "session_id" must be a int64`},
		{"reauth_notify", `{"session_id":-5,"step":0}`, "session_id must be positive"},
		{"reauth_notify", `{"session_id":999999,"step":0}`, "session 999999 does not exist"},
		{"reauth_notify", `{"session_id":1,"step":1000}`, "beyond the reminder schedule"},
		{"reauth_notify", `{"session_id":1,"step":2147483648}`, "beyond the reminder schedule"},
	}
	var ids []int64
	for _, r := range rows {
		cases++
		queue := map[string]string{"reauth_device": "podero", "reauth_notify": "notify"}[r.kind]
		var id int64
		require.NoError(t, conn.QueryRow(ctx, `INSERT INTO river_job (kind, queue, args, state, max_attempts, priority)
			VALUES ($1, $2, $3::jsonb, 'available', 25, 1) RETURNING id`, r.kind, queue, r.args).Scan(&id))
		ids = append(ids, id)
	}
	_, err = conn.Exec(ctx, "NOTIFY river_insert") // wake the producers; they also poll
	require.NoError(t, err)
	deadline := time.Now().Add(30 * time.Second)
	for i, id := range ids {
		for {
			var state string
			var attempt int
			var lastErr *string
			require.NoError(t, conn.QueryRow(ctx, `SELECT state, attempt, errors[array_upper(errors, 1)] ->> 'error' FROM river_job WHERE id = $1`, id).Scan(&state, &attempt, &lastErr))
			if state == "cancelled" {
				require.NotNil(t, lastErr)
				require.Contains(t, *lastErr, rows[i].want, "row %d: %s", i, rows[i].args)
				require.Equal(t, 1, attempt, "cancelled at once, not retried")
				break
			}
			require.True(t, time.Now().Before(deadline), "row %d (%s) is %s after %d attempts", i, rows[i].args, state, attempt)
			time.Sleep(20 * time.Millisecond)
		}
	}
	require.Zero(t, count(t, conn, "SELECT count(*) FROM auth_session WHERE device_id = '"+user.Devices[1].ID+"'"), "no hostile row stored a session")

	// The service is alive and a good request still goes through. It names
	// the other device: the CSV's good row may still be in flight (a request
	// for its device would then be its duplicate).
	var res struct {
		Duplicate bool `json:"duplicate"`
	}
	other := strings.Replace(valid(""), dev.ID, user.Devices[1].ID, 1)
	other = strings.Replace(other, `"`+string(dev.Kind)+`"`, `"`+string(user.Devices[1].Kind)+`"`, 1)
	require.Equal(t, http.StatusAccepted, api(t, http.MethodPost, s.base+"/v1/reauth", apiToken, other, &res))
	require.False(t, res.Duplicate)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = s.mails.Wait(wctx, 2) // the CSV's good row, then this one
	require.NoError(t, err)
	select {
	case <-srv.done:
		t.Fatalf("serve exited: %s", srv.output.String())
	default:
	}

	// Failed authentication is limited per address.
	cases++
	var last int
	for range 12 {
		last = api(t, http.MethodPost, s.base+"/v1/reauth", "wrong-token-0123456789", valid(""), nil)
	}
	require.Equal(t, http.StatusTooManyRequests, last)

	t.Logf("%d hostile cases", cases)
	require.GreaterOrEqual(t, cases, 40)
}

func count(t *testing.T, conn *pgx.Conn, q string) int {
	t.Helper()
	var n int
	require.NoError(t, conn.QueryRow(context.Background(), q).Scan(&n))
	return n
}
