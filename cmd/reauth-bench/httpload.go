package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/reauth/reauth"
)

// benchAPIToken is the bench's token in API_TOKENS (serveEnv).
const benchAPIToken = "bench-api-token-0123456789"

// httpConns is how many connections the HTTP load generator keeps open.
const httpConns = 50

// httpEnqueue drives POST /v1/reauth at the serve process at base from
// httpConns keep-alive connections for sz.HTTPFor, one fresh device a
// request, with the podero queue paused (the caller pauses it) so the jobs
// wait and no worker competes. Then, in the same state, it enqueues as many
// fresh devices with reauth.EnqueueMany (transactions of 500) for the
// ratio. It checks that every 202 became exactly one job and deletes the
// jobs of both.
func (b *bench) httpEnqueue(ctx context.Context, sz sizes, base string, r *results) error {
	devs, err := b.take(sz.HTTPDevices)
	if err != nil {
		return err
	}
	// At most half for HTTP: the other half is EnqueueMany's.
	httpDevs := devs[:len(devs)/2]
	tr := &http.Transport{MaxConnsPerHost: httpConns, MaxIdleConnsPerHost: httpConns, MaxIdleConns: httpConns, IdleConnTimeout: 90 * time.Second}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	type answer struct {
		JobID     int64 `json:"job_id"`
		Duplicate bool  `json:"duplicate"`
	}
	var next atomic.Int64
	var exhausted atomic.Bool
	var failed atomic.Pointer[error]
	lat := make([][]float64, httpConns)
	jobs := make([][]int64, httpConns)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := func(err error) {
		if failed.CompareAndSwap(nil, &err) {
			cancel()
		}
	}
	post := func(d simDevice) (answer, error) {
		body, err := json.Marshal(map[string]string{"org_id": d.Org, "user_id": d.User, "device_kind": string(d.Kind), "device_id": d.ID, "email": d.Email})
		if err != nil {
			return answer{}, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/reauth", bytes.NewReader(body))
		if err != nil {
			return answer{}, err
		}
		req.Header.Set("Authorization", "Bearer "+benchAPIToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return answer{}, err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if err != nil {
			return answer{}, err
		}
		if resp.StatusCode != http.StatusAccepted {
			return answer{}, fmt.Errorf("POST /v1/reauth for device %s: %s %s", d.ID, resp.Status, bytes.TrimSpace(raw))
		}
		var a answer
		if err := json.Unmarshal(raw, &a); err != nil {
			return answer{}, fmt.Errorf("POST /v1/reauth: 202 with %q: %w", raw, err)
		}
		if a.Duplicate || a.JobID == 0 {
			return answer{}, fmt.Errorf("POST /v1/reauth for fresh device %s: 202 %s", d.ID, raw)
		}
		return a, nil
	}
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(sz.HTTPFor)
	for c := range httpConns {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(len(httpDevs)) {
					exhausted.Store(true)
					return
				}
				t0 := time.Now()
				a, err := post(httpDevs[i])
				if err != nil {
					fail(err)
					return
				}
				lat[c] = append(lat[c], float64(time.Since(t0).Microseconds())/1000)
				jobs[c] = append(jobs[c], a.JobID)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if e := failed.Load(); e != nil {
		return *e
	}
	if exhausted.Load() {
		return fmt.Errorf("HTTP enqueue used all %d devices set aside for it within %s: raise sizes.HTTPDevices (and so the simulator's)", len(httpDevs), sz.HTTPFor)
	}
	var all []float64
	seen := map[int64]bool{}
	for c := range httpConns {
		all = append(all, lat[c]...)
		for _, id := range jobs[c] {
			if seen[id] {
				return fmt.Errorf("POST /v1/reauth answered job %d twice", id)
			}
			seen[id] = true
		}
	}
	n := len(all)
	if n == 0 {
		return fmt.Errorf("no POST /v1/reauth answered in %s", sz.HTTPFor)
	}
	r.HTTPEnqueueRequests = n
	r.HTTPEnqueueRPS = round(float64(n)/took.Seconds(), 0)
	r.HTTPEnqueueP50MS, r.HTTPEnqueueP99MS = pct(all, 50), pct(all, 99)
	// Every 202 is one job (the requests' devices are those answered: each
	// connection took the next device only after its previous answer).
	if err := b.checkJobs(ctx, httpDevs[:n], "HTTP enqueue"); err != nil {
		return err
	}
	var ids []int64
	if err := b.pool.QueryRow(ctx, `SELECT coalesce(array_agg(j.id), '{}') FROM river_job j
		JOIN unnest($2::text[]) AS d(id) ON d.id = j.args ->> 'device_id' WHERE j.kind = $1`,
		reauth.DeviceArgs{}.Kind(), deviceIDs(httpDevs[:n])).Scan(&ids); err != nil {
		return err
	}
	for _, id := range ids {
		if !seen[id] {
			return fmt.Errorf("job %d of an HTTP request's device is not one a 202 named", id)
		}
	}

	// EnqueueMany over as many fresh devices, in the same paused state.
	many := devs[len(devs)/2:]
	if len(many) < n {
		return fmt.Errorf("HTTP enqueue made %d requests, %d devices left for EnqueueMany: raise sizes.HTTPDevices", n, len(many))
	}
	many = many[:n]
	start = time.Now()
	if err := b.enqueueBatches(ctx, many); err != nil {
		return err
	}
	r.EnqueueManyRPS = round(float64(n)/time.Since(start).Seconds(), 0)
	r.HTTPVsEnqueueMany = round(r.HTTPEnqueueRPS/r.EnqueueManyRPS, 3)
	if err := b.checkJobs(ctx, many, "EnqueueMany"); err != nil {
		return err
	}
	// The later phases start clean: without the jobs, and without their
	// dead rows in the fetch's index.
	if err := b.deleteJobs(ctx, river.NewJobDeleteManyParams().Kinds(reauth.DeviceArgs{}.Kind()).States(rivertype.JobStateAvailable)); err != nil {
		return err
	}
	_, err = b.pool.Exec(ctx, "VACUUM ANALYZE river_job")
	return err
}

func deviceIDs(devs []simDevice) []string {
	ids := make([]string, len(devs))
	for i, d := range devs {
		ids[i] = d.ID
	}
	return ids
}

// checkJobs fails unless each device has exactly one reauth_device job.
func (b *bench) checkJobs(ctx context.Context, devs []simDevice, what string) error {
	var jobs, devices int
	if err := b.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT d.id) FROM river_job j
		JOIN unnest($2::text[]) AS d(id) ON d.id = j.args ->> 'device_id' WHERE j.kind = $1`, reauth.DeviceArgs{}.Kind(), deviceIDs(devs)).Scan(&jobs, &devices); err != nil {
		return err
	}
	if jobs != len(devs) || devices != len(devs) {
		return fmt.Errorf("%s: %d requests made %d jobs for %d devices", what, len(devs), jobs, devices)
	}
	return nil
}
