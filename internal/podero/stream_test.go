package podero

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
)

// writeUsers streams a users list of n users, generated on the fly in the
// documented shape (about 480 bytes each), through a small buffer.
func writeUsers(w http.ResponseWriter, n int) {
	w.Header().Set("Content-Type", "application/json")
	bw := bufio.NewWriterSize(w, 32<<10)
	_ = bw.WriteByte('[')
	var buf []byte
	for i := range n {
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		buf = appendUser(buf[:0], i)
		_, _ = bw.Write(buf)
	}
	_, _ = bw.WriteString("]\n")
	_ = bw.Flush()
}

func appendUser(b []byte, i int) []byte {
	b = fmt.Appendf(b, `{"id":"00000000-0000-4000-8000-%012d","organization_id":"%s","role":"user",`, i, testOrg)
	b = fmt.Appendf(b, `"email":"user%d@example.test","external_user_id":"crm-%d","first_name":"Anna","last_name":"Svensson",`, i, i)
	b = fmt.Appendf(b, `"is_onboarded":true,"country":"SE","last_login":"2025-03-01T10:00:00Z","joined_at":"2024-01-15T09:00:00Z",`)
	return fmt.Appendf(b, `"num_inverters":%d,"num_electric_vehicles":%d,"num_wallboxes":%d,"num_heat_pumps":0}`, i%2, i%3/2, i%5/4)
}

func TestForEachUser(t *testing.T) {
	t.Parallel()

	t.Run("Decodes", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, fakeOpts{}, respond(200, ` [
			{"id":"`+testUser+`","email":"a@example.com","external_user_id":"ext-1","role":"user","num_inverters":2,"num_wallboxes":null},
			{"id":"11111111-2222-4333-8444-555555555555","email":"b@example.com","deleted_at":"2024-05-01T10:00:00Z"}
		] `))
		var users []User
		err := f.client(t, Config{}).ForEachUser(context.Background(), testOrg, func(u User) error {
			users = append(users, u)
			return nil
		})
		require.NoError(t, err)
		require.Equal(t, "/api/partners/v2.0/org/"+testOrg+"/users", f.lastAPI(t).Path)
		require.Len(t, users, 2)
		require.Equal(t, "a@example.com", users[0].Email)
		n, known := users[0].DeviceCount("inverter")
		require.True(t, known)
		require.Equal(t, 2, n)
		_, known = users[0].DeviceCount("wallbox")
		require.False(t, known, "null is unknown")
		require.NotNil(t, users[1].DeletedAt)
	})

	t.Run("CallbackErrorAsIs", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, fakeOpts{}, func(w http.ResponseWriter, r *http.Request) { writeUsers(w, 100) })
		stop := errors.New("the database is gone")
		seen := 0
		err := f.client(t, Config{}).ForEachUser(context.Background(), testOrg, func(User) error {
			if seen++; seen == 10 {
				return stop
			}
			return nil
		})
		require.ErrorIs(t, err, stop)
		_, isPodero := AsError(err)
		require.False(t, isPodero, "the callback's error is not Podero's")
		require.Equal(t, 10, seen)
	})

	t.Run("Malformed", func(t *testing.T) {
		t.Parallel()
		big := `[{"id":"` + testUser + `","first_name":"` + strings.Repeat("a", MaxUserBytes) + `"}]`
		for _, tt := range []struct{ name, body, detail string }{
			{"NotAnArray", `{"items":[]}`, "not a JSON array"},
			{"Truncated", `[{"id":"` + testUser + `"},{"id":`, "ends early"},
			{"NoClosingBracket", `[{"id":"` + testUser + `"}`, "ends early"},
			{"WrongType", `[{"id":42}]`, "wrong shape"},
			{"TrailingData", `[] []`, "after the users list"},
			{"UserTooLarge", big, "larger than"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				f := newFake(t, fakeOpts{}, respond(200, tt.body))
				err := f.client(t, Config{}).ForEachUser(context.Background(), testOrg, func(User) error { return nil })
				e := requireKind(t, err, KindMalformed, OpListUsers, 200)
				require.Contains(t, e.Detail, tt.detail)
			})
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, fakeOpts{}, respond(404, `{"detail":"Not Found"}`))
		err := f.client(t, Config{}).ForEachUser(context.Background(), testOrg, func(User) error { return nil })
		requireKind(t, err, KindNotFound, OpListUsers, 404)
	})

	t.Run("InvalidOrg", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, fakeOpts{}, respond(200, `[]`))
		err := f.client(t, Config{}).ForEachUser(context.Background(), "not-a-uuid", func(User) error { return nil })
		requireKind(t, err, KindInvalid, OpListUsers, 0)
		require.Zero(t, f.apiHits.Load())
	})

	// A list that takes longer than RequestTimeout as a whole, but never
	// waits that long for its next chunk, is read to its end.
	t.Run("SlowButSteady", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, fakeOpts{}, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte("["))
			for i := range 12 {
				if i > 0 {
					_, _ = w.Write([]byte(","))
				}
				_, _ = w.Write(appendUser(nil, i))
				w.(http.Flusher).Flush()
				time.Sleep(50 * time.Millisecond)
			}
			_, _ = w.Write([]byte("]"))
		})
		n := 0
		start := time.Now()
		err := f.client(t, Config{RequestTimeout: 250 * time.Millisecond}).ForEachUser(context.Background(), testOrg,
			func(User) error { n++; return nil })
		require.NoError(t, err)
		require.Equal(t, 12, n)
		require.Greater(t, time.Since(start), 500*time.Millisecond, "longer than RequestTimeout in all")
	})

	// A stream that stops sending fails after RequestTimeout, retryable.
	t.Run("Stalled", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, fakeOpts{}, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte("[" + string(appendUser(nil, 1)) + ","))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		})
		n := 0
		start := time.Now()
		err := f.client(t, Config{RequestTimeout: 300 * time.Millisecond}).ForEachUser(context.Background(), testOrg,
			func(User) error { n++; return nil })
		e := requireKind(t, err, KindRetryable, OpListUsers, 200)
		require.Contains(t, e.Detail, "timeout")
		require.Equal(t, 1, n)
		require.Less(t, time.Since(start), 3*time.Second)
	})

	// The callback's time is not the stream's: a slow consumer is not a
	// stalled Podero.
	t.Run("SlowCallback", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, fakeOpts{}, func(w http.ResponseWriter, r *http.Request) { writeUsers(w, 3) })
		err := f.client(t, Config{RequestTimeout: 200 * time.Millisecond}).ForEachUser(context.Background(), testOrg,
			func(User) error { time.Sleep(300 * time.Millisecond); return nil })
		require.NoError(t, err)
	})
}

// TestForEachUserHeap: an organization of 1,000,000 users (STREAM_USERS) is
// listed with at most 50 MB of extra heap.
//
// The measurement: the runtime's heap object bytes (live and not yet swept,
// runtime/metrics /memory/classes/heap/objects:bytes, what MemStats calls
// HeapAlloc) sampled every millisecond while the list streams, its peak
// minus its value after a GC before the listing. That counts garbage the GC
// has not collected yet, so it bounds what the listing holds from above. The
// test server generating the list runs in the same process and counts too.
// It is not parallel: Go runs parallel tests only once the serial ones are
// done, so nothing else allocates meanwhile. TotalAlloc shows how much was
// allocated in all (and freed), the memory a decoded []User would have held
// at once.
func TestForEachUserHeap(t *testing.T) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("STREAM_USERS")); err == nil && v > 0 {
		n = v
	}
	if testing.Short() {
		n = 50_000
	}
	f := newFake(t, fakeOpts{}, func(w http.ResponseWriter, r *http.Request) { writeUsers(w, n) })
	c := f.client(t, Config{})
	// The token first, so its fetch is not in the measurement.
	_, err := c.accessToken(context.Background())
	require.NoError(t, err)

	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	heap := func() uint64 { metrics.Read(samples); return samples[0].Value.Uint64() }
	runtime.GC()
	base := heap()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	done, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			if h := heap(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	start := time.Now()
	count, devices := 0, 0
	err = c.ForEachUser(context.Background(), testOrg, func(u User) error {
		count++
		for _, k := range reauth.DeviceKinds {
			if m, _ := u.DeviceCount(k); m > 0 {
				devices++
			}
		}
		return nil
	})
	took := time.Since(start)
	close(done)
	<-sampled
	require.NoError(t, err)
	require.Equal(t, n, count)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	extra := int64(peak.Load()) - int64(base)
	t.Logf("%d users (%d MB of JSON, %d device kinds) listed in %s: peak extra heap %.1f MB (base %.1f MB); %.0f MB allocated and freed in all; %d GCs",
		n, int64(n)*int64(len(appendUser(nil, n/2))+1)>>20, devices, took.Round(time.Millisecond),
		float64(extra)/(1<<20), float64(base)/(1<<20), float64(after.TotalAlloc-before.TotalAlloc)/(1<<20), after.NumGC-before.NumGC)
	require.LessOrEqual(t, extra, int64(50<<20), "extra heap while listing %d users", n)
}
