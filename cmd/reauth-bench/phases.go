package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/riverqueue/river"

	"github.com/reauth/reauth"
)

// latencies are the percentiles of enqueue → session stored (the
// session's created_at, the start of the transaction that stores it, minus
// the job's created_at, both on the database's clock) and enqueue → email
// accepted (the catcher's clock minus the harness's, one machine's clock).
type latencies struct {
	P50StoredMS, P95StoredMS, P99StoredMS float64
	P50EmailMS, P95EmailMS, P99EmailMS    float64
}

// latenciesOf measures the latencies of devs, enqueued at the times given.
func (b *bench) latenciesOf(ctx context.Context, devs []simDevice, enqueued []time.Time) (latencies, error) {
	ids := make([]string, len(devs))
	at := make(map[string]time.Time, len(devs))
	for i, d := range devs {
		ids[i] = d.ID
		at[d.ID] = enqueued[i]
	}
	rows, err := b.pool.Query(ctx, `
		SELECT s.device_id, s.id, extract(epoch FROM s.created_at - j.created_at) * 1000
		FROM auth_session s JOIN river_job j ON j.id = s.job_id
		WHERE s.device_id = ANY($1::uuid[])`, ids)
	if err != nil {
		return latencies{}, err
	}
	mails, _, err := b.mailTimes(ctx)
	if err != nil {
		rows.Close()
		return latencies{}, err
	}
	var stored, email []float64
	for rows.Next() {
		var dev string
		var session int64
		var ms float64
		if err := rows.Scan(&dev, &session, &ms); err != nil {
			return latencies{}, err
		}
		stored = append(stored, ms)
		sent, ok := mails[fmt.Sprintf("<reauth-%d-0@bench.example>", session)]
		if !ok {
			return latencies{}, fmt.Errorf("no email for session %d", session)
		}
		email = append(email, float64(sent.Sub(at[dev]).Microseconds())/1000)
	}
	if err := rows.Err(); err != nil {
		return latencies{}, err
	}
	if len(stored) != len(devs) {
		return latencies{}, fmt.Errorf("%d sessions stored for %d requests", len(stored), len(devs))
	}
	return latencies{
		P50StoredMS: pct(stored, 50), P95StoredMS: pct(stored, 95), P99StoredMS: pct(stored, 99),
		P50EmailMS: pct(email, 50), P95EmailMS: pct(email, 95), P99EmailMS: pct(email, 99),
	}, nil
}

// checkDelivered fails unless each device has exactly one session and one
// message recorded as sent (within 10 s of the catcher accepting the last:
// the record commits just after the SMTP server's reply).
func (b *bench) checkDelivered(ctx context.Context, devs []simDevice) error {
	ids := make([]string, len(devs))
	for i, d := range devs {
		ids[i] = d.ID
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var sessions, sent int
		err := b.pool.QueryRow(ctx, `
			SELECT count(DISTINCT s.id), count(n.id) FILTER (WHERE n.state = 'sent')
			FROM auth_session s LEFT JOIN notification n ON n.session_id = s.id
			WHERE s.device_id = ANY($1::uuid[])`, ids).Scan(&sessions, &sent)
		if err != nil {
			return err
		}
		if sessions == len(devs) && sent == len(devs) {
			return nil
		}
		if sessions > len(devs) || sent > len(devs) || time.Now().After(deadline) {
			return fmt.Errorf("%d requests made %d sessions and %d sent messages", len(devs), sessions, sent)
		}
	}
}

// sweepOrg owns the sweep's generated devices.
const sweepOrg = "6f1c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"

// sweep generates n synced devices, 5% lapsed, and has a fresh `reauth
// serve` run the sweep with the podero queue paused (so the requests it
// enqueues wait): the sweep job's own running time and the process's peak
// RSS.
func (b *bench) sweep(ctx context.Context, n int, r *results) error {
	start := time.Now()
	if _, err := b.pool.Exec(ctx, `
		INSERT INTO device (kind, id, org_id, user_id, is_authenticated, synced_at)
		SELECT (ARRAY['inverter', 'electric_vehicle', 'wallbox'])[1 + i % 3], gen_random_uuid(),
		       $2, gen_random_uuid(), i % 20 <> 0, now()
		FROM generate_series(1, $1) AS i`, n, sweepOrg); err != nil {
		return err
	}
	if _, err := b.pool.Exec(ctx, "ANALYZE device"); err != nil {
		return err
	}
	b.logf("sweep: generated %d devices in %s", n, time.Since(start).Round(time.Millisecond))
	if err := b.insert.QueuePause(ctx, reauth.QueuePodero, nil); err != nil {
		return fmt.Errorf("pause the podero queue: %w", err)
	}
	p, _, err := b.serve(ctx)
	if err != nil {
		return err
	}
	defer p.stop()
	res, err := b.insert.Insert(ctx, reauth.SweepArgs{}, nil)
	if err != nil {
		return err
	}
	var state string
	var secs float64
	for deadline := time.Now().Add(5 * time.Minute); ; {
		err := b.pool.QueryRow(ctx, `SELECT state, coalesce(extract(epoch FROM finalized_at - attempted_at), 0)
			FROM river_job WHERE id = $1`, res.Job.ID).Scan(&state, &secs)
		if err != nil {
			return err
		}
		if state == "completed" {
			break
		}
		if state != "available" && state != "running" || time.Now().After(deadline) {
			return fmt.Errorf("the sweep job is %s", state)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Sweep1MRSSMB = p.peakRSSMB()
	p.stop()
	r.SweepDevices, r.Sweep1MS = n, round(secs, 2)
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'reauth_device' AND args ->> 'reason' = 'sweep'`).Scan(&r.SweepLapsed); err != nil {
		return err
	}
	if r.SweepLapsed != n/20 {
		return fmt.Errorf("the sweep requested %d of %d lapsed devices", r.SweepLapsed, n/20)
	}
	// Leave the database as the pipeline had it.
	swept := river.NewJobDeleteManyParams().Kinds(reauth.DeviceArgs{}.Kind()).
		Where("args ->> 'reason' = @reason", river.NamedArgs{"reason": reauth.ReasonSweep})
	if err := b.deleteJobs(ctx, swept); err != nil {
		return err
	}
	if _, err := b.pool.Exec(ctx, "DELETE FROM device WHERE org_id = '"+sweepOrg+"'"); err != nil {
		return err
	}
	return b.insert.QueueResume(ctx, reauth.QueuePodero, nil)
}

// backlog enqueues sz.Backlog requests with no service running, starts one,
// and measures the rate of its first sz.Pipeline emails (from ready to the
// last of them), against the empty-queue pipeline's rate.
func (b *bench) backlog(ctx context.Context, sz sizes, r *results) error {
	devs, err := b.take(sz.Backlog)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := b.enqueueBatches(ctx, devs); err != nil {
		return err
	}
	b.logf("backlog: enqueued %d in %s", len(devs), time.Since(start).Round(time.Millisecond))
	if _, err := b.pool.Exec(ctx, "VACUUM ANALYZE river_job"); err != nil {
		return err
	}
	base, err := b.mailCount(ctx)
	if err != nil {
		return err
	}
	p, _, err := b.serve(ctx)
	if err != nil {
		return err
	}
	defer p.stop()
	ready := time.Now()
	k := min(sz.Pipeline, sz.Backlog)
	if _, err := b.waitMail(ctx, base+k, 10*time.Minute); err != nil {
		return err
	}
	r.BacklogRSSMB = p.peakRSSMB()
	_, order, err := b.mailTimes(ctx)
	if err != nil {
		return err
	}
	r.BacklogJobs = sz.Backlog
	r.BacklogRPS = round(float64(k)/order[base+k-1].Sub(ready).Seconds(), 0)
	r.BacklogVsEmpty = round(r.BacklogRPS/r.PipelineRPS, 3)
	return nil
}

// proc is a child process with its output in a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

// start runs a child and returns its first line of output once printed
// (for servers that announce their address), or "" for one that prints
// none within a second.
func (b *bench) start(ctx context.Context, name string, env []string, path string, args ...string) (*proc, string, error) {
	logPath := filepath.Join(b.tmp, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano()))
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		first := true
		for sc.Scan() {
			if first {
				lines <- sc.Text()
				first = false
			}
		}
		close(lines)
	}()
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	if name == "serve" {
		return p, "", nil
	}
	select {
	case line, ok := <-lines:
		if !ok {
			return nil, "", fmt.Errorf("%s exited; its log: %s", name, tail(logPath))
		}
		return p, line, nil
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, "", fmt.Errorf("%s printed nothing in 30 s", name)
	case <-ctx.Done():
		p.stop()
		return nil, "", ctx.Err()
	}
}

// stop sends SIGTERM and waits, then kills after 30 s. Stopping twice is
// harmless.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// peakRSSMB is the process's peak resident set (VmHWM), in MB.
func (p *proc) peakRSSMB() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return math.NaN()
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return round(kb/1024, 1)
		}
	}
	return math.NaN()
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// get GETs url and returns the body of a 200 answer; close it.
func get(ctx context.Context, url string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return resp.Body, nil
}

func getJSON(ctx context.Context, url string, v any) error {
	body, err := get(ctx, url)
	if err != nil {
		return err
	}
	defer body.Close()
	return json.NewDecoder(body).Decode(v)
}

func fetchProfile(ctx context.Context, url, path string) error {
	body, err := get(ctx, url)
	if err != nil {
		return err
	}
	defer body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// pct is the p-th percentile (nearest rank) of xs, in place.
func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	slices.Sort(xs)
	i := int(math.Ceil(p/100*float64(len(xs)))) - 1
	return round(xs[max(i, 0)], 1)
}

func round(x float64, digits int) float64 {
	m := math.Pow(10, float64(digits))
	return math.Round(x*m) / m
}
