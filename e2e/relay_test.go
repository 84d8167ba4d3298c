package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/testdb"
)

// TestRelayRefusingEveryone is issue 13's first finding, run as an operator
// meets it: a relay whose allow-list is wrong answers "554 5.7.1 Relay
// access denied" to every recipient. `serve` suppresses nobody and cancels
// nothing; it logs the refusals and then the broken channel at ERROR,
// counts them, and shows the channel broken in /readyz (still 200). Once
// the relay is fixed, `reauth jobs retry` delivers every message.
func TestRelayRefusingEveryone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testdb.NewURL(t)
	s := newService(t, dbURL, "-users", "4") // 12 devices: 12 distinct addresses
	s.mails.RejectWith("*", 554, "5.7.1", "Relay access denied")
	p := s.serve(t, "SYNC_SCHEDULE=off", "SWEEP_SCHEDULE=off")

	st := s.state(t)
	var jobs []int64
	for _, u := range st.Orgs[0].Users {
		for _, d := range u.Devices {
			jobs = append(jobs, s.enqueue(t, st.Orgs[0].ID, u, d, fmt.Sprintf(`,"email":"user%d@example.test"`, len(jobs))))
		}
	}
	require.Len(t, jobs, 12)

	var ready struct {
		Status string         `json:"status"`
		Email  map[string]any `json:"email"`
	}
	for deadline := time.Now().Add(60 * time.Second); ready.Email == nil; time.Sleep(200 * time.Millisecond) {
		require.False(t, time.Now().After(deadline), "readyz never showed the email channel broken:\n%s", tail(p.output.String(), 3000))
		ready.Email = nil
		getJSON(t, s.base+"/readyz", &ready)
	}
	require.Equal(t, "ready", ready.Status, "a broken relay does not make the process unready")
	require.Equal(t, true, ready.Email["broken"])
	require.Equal(t, "554 5.7.1 Relay access denied", ready.Email["last_refusal"])
	require.Contains(t, ready.Email["hint"], "SMTP_URL")

	var errs []string
	for _, line := range strings.Split(p.output.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["level"] == "ERROR" {
			errs = append(errs, fmt.Sprint(m["msg"]))
		}
	}
	require.Contains(t, strings.Join(errs, "\n"), "not the address's", "each relay refusal is loud")
	require.Contains(t, strings.Join(errs, "\n"), "email channel broken")

	resp, err := http.Get(s.base + "/metrics")
	require.NoError(t, err)
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Regexp(t, `reauth_email_channel_broken_total 1\b`, string(metrics))
	require.Regexp(t, `reauth_email_channel_broken 1\b`, string(metrics))
	require.Regexp(t, `reauth_email_refused_total\{class="system"\} [1-9]`, string(metrics))

	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var suppressed, given int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM email_suppression`).Scan(&suppressed))
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state IN ('cancelled', 'discarded')`).Scan(&given))
	require.Zero(t, suppressed, "nobody is suppressed")
	require.Zero(t, given, "no request is given up")

	// The relay is fixed; the operator retries the waiting requests now.
	s.mails.RejectWith("*", 0, "", "")
	retry := start(t, s.env, "reauth", "jobs", "retry", "--state", "retryable,scheduled", "--kind", "reauth_device", "--yes")
	require.Zero(t, retry.wait(t, 30*time.Second), retry.output.String())
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var done int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'reauth_device' AND state = 'completed'`).Scan(&done))
		if done == len(jobs) {
			break
		}
		require.False(t, time.Now().After(deadline), "%d of %d requests completed", done, len(jobs))
	}
	require.Len(t, s.mails.Messages(), len(jobs), "one message each")
}
