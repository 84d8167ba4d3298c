// Package metrics defines the service's Prometheus metrics on a registry of
// its own. Every method is safe on a nil *Metrics, so components built
// without metrics (tests, tools) need no special case.
package metrics

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/podero"
	"github.com/reauth/reauth/internal/store"
)

// Funnel steps, in order.
const (
	StepRequested   = "requested"    // a reauth_device request accepted
	StepLinkCreated = "link_created" // a session stored
	StepSent        = "sent"         // its message sent
	StepOpened      = "opened"       // its link opened the first time
	StepCompleted   = "completed"    // the login completed (via the link or elsewhere)
)

// Metrics holds every collector.
type Metrics struct {
	Registry *prometheus.Registry

	jobs          *prometheus.CounterVec
	poderoSeconds *prometheus.HistogramVec
	limiterWait   prometheus.Histogram
	limiterDefer  prometheus.Counter
	linkRejected  *prometheus.CounterVec
	notifications *prometheus.CounterVec
	funnel        *prometheus.CounterVec
	emailRefused  *prometheus.CounterVec
	emailBroken   prometheus.Counter
	eventsGivenUp *prometheus.CounterVec

	hostsMu sync.Mutex
	hosts   map[string]bool // the host labels of linkRejected
}

// MaxLinkRejectedHosts bounds the host label of
// reauth_podero_link_rejected_total: hosts come from Podero's answers, so
// after this many distinct ones the rest are counted as "other".
const MaxLinkRejectedHosts = 20

// New registers the metrics. pool feeds the queue depth gauge (a cached
// query); breakerOpen, when not nil, reports the Podero circuit breaker.
func New(pool *pgxpool.Pool, breakerOpen func() bool) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reauth_jobs_finished_total", Help: "Jobs this process worked, by kind and the state they ended the attempt in.",
		}, []string{"kind", "state"}),
		poderoSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "reauth_podero_request_seconds", Help: "Podero API requests by operation and status class.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"op", "class"}),
		limiterWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "reauth_podero_limiter_wait_seconds", Help: "Time waited for a slot of the shared Podero rate limit.",
			Buckets: []float64{0, .01, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		limiterDefer: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reauth_podero_limiter_deferred_total", Help: "Calls deferred (job snoozed) because a slot was too far away.",
		}),
		linkRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reauth_podero_link_rejected_total", Help: "Podero authentication_urls turned away because their host is not on PODERO_LINK_HOSTS, by host (the entry that would allow it).",
		}, []string{"host"}),
		hosts: map[string]bool{},
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reauth_notifications_total", Help: "Delivery attempts by channel and result (sent, retry, failed).",
		}, []string{"channel", "result"}),
		funnel: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reauth_funnel_total", Help: "Reauthentications reaching each step: requested, link_created, sent, opened, completed.",
		}, []string{"step"}),
		emailRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reauth_email_refused_total", Help: "Recipients the SMTP server refused with a 5xx at RCPT TO, by what was done: mailbox (suppressed), message (this channel failed for the message), system (retried: policy, auth, relay, capacity), channel_broken (retried, nothing suppressed: the channel counts as broken).",
		}, []string{"class"}),
		emailBroken: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reauth_email_channel_broken_total", Help: "Times the email channel began to count as broken: many distinct addresses refused within minutes.",
		}),
		eventsGivenUp: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reauth_events_given_up_total", Help: "reauth_event jobs given up, by reason: refused (a 4xx refusing the event), unreachable (401, 403, 404 or a redirect for EVENTS_GIVE_UP_AFTER), attempts (MAX_ATTEMPTS used).",
		}, []string{"reason"}),
	}
	m.Registry.MustRegister(m.jobs, m.poderoSeconds, m.limiterWait, m.limiterDefer, m.linkRejected, m.notifications, m.funnel,
		m.emailRefused, m.emailBroken, m.eventsGivenUp,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "reauth_db_statements_total", Help: "Statements this process sent to Postgres, BEGIN and COMMIT included (round trips).",
		}, func() float64 { return float64(DBStatements.Count()) }),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, step := range []string{StepRequested, StepLinkCreated, StepSent, StepOpened, StepCompleted} {
		m.funnel.WithLabelValues(step)
	}
	if breakerOpen != nil {
		m.Registry.MustRegister(flagGauge("reauth_podero_breaker_open",
			"1 while the Podero circuit breaker is open or probing, else 0.", breakerOpen))
	}
	if pool != nil {
		m.Registry.MustRegister(newJobsCollector(pool))
	}
	return m
}

// JobFinished counts one job attempt's outcome.
func (m *Metrics) JobFinished(kind, state string) {
	if m != nil {
		m.jobs.WithLabelValues(kind, state).Inc()
	}
}

// PoderoRequest observes one Podero request (status 0: no answer).
func (m *Metrics) PoderoRequest(op string, status int, took time.Duration) {
	if m == nil {
		return
	}
	class := "error"
	if status > 0 {
		class = strconv.Itoa(status/100) + "xx"
	}
	m.poderoSeconds.WithLabelValues(op, class).Observe(took.Seconds())
}

// LimiterWaited observes a wait for a rate-limit slot; deferred counts a
// call sent back to snooze instead.
func (m *Metrics) LimiterWaited(wait time.Duration, deferred bool) {
	if m == nil {
		return
	}
	if deferred {
		m.limiterDefer.Inc()
		return
	}
	m.limiterWait.Observe(wait.Seconds())
}

// PoderoLinkRejected counts an authentication_url turned away because host
// is not on PODERO_LINK_HOSTS.
func (m *Metrics) PoderoLinkRejected(host string) {
	if m == nil {
		return
	}
	m.hostsMu.Lock()
	if !m.hosts[host] {
		if len(m.hosts) >= MaxLinkRejectedHosts {
			host = "other"
		} else {
			m.hosts[host] = true
		}
	}
	m.hostsMu.Unlock()
	m.linkRejected.WithLabelValues(host).Inc()
}

// Notification counts a delivery attempt's result.
func (m *Metrics) Notification(channel, result string) {
	if m != nil {
		m.notifications.WithLabelValues(channel, result).Inc()
	}
}

// EmailRefused counts a recipient refused at RCPT TO, by class (mailbox,
// message, system, channel_broken).
func (m *Metrics) EmailRefused(class string) {
	if m != nil {
		m.emailRefused.WithLabelValues(class).Inc()
	}
}

// EmailChannelBroken counts the email channel beginning to count as broken.
func (m *Metrics) EmailChannelBroken() {
	if m != nil {
		m.emailBroken.Inc()
	}
}

// EventGivenUp counts a reauth_event job given up, by reason (refused,
// unreachable, attempts).
func (m *Metrics) EventGivenUp(reason string) {
	if m != nil {
		m.eventsGivenUp.WithLabelValues(reason).Inc()
	}
}

// WatchEmail exports broken as reauth_email_channel_broken (1 while the
// email channel counts as broken).
func (m *Metrics) WatchEmail(broken func() bool) {
	if m == nil || broken == nil {
		return
	}
	m.Registry.MustRegister(flagGauge("reauth_email_channel_broken",
		"1 while the email channel counts as broken (many distinct addresses refused within minutes), else 0.", broken))
}

// flagGauge is a gauge named name that reads 1 while on() is true, else 0.
func flagGauge(name, help string, on func() bool) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
		if on() {
			return 1
		}
		return 0
	})
}

// Funnel counts a reauthentication reaching step.
func (m *Metrics) Funnel(step string) {
	if m != nil {
		m.funnel.WithLabelValues(step).Inc()
	}
}

// UndeliveredAfter is how long a message may be due and not sent before
// reauth_messages_undelivered counts it.
const UndeliveredAfter = 15 * time.Minute

// queues are the service's queues: each has a reauth_queue_oldest_job_seconds
// series from the start, 0 while nothing waits.
var queues = []string{reauth.QueuePodero, reauth.QueueNotify, reauth.QueueMaintenance, reauth.QueueEvents}

// dbReading is what dbCollector reads in one go.
type dbReading struct {
	depths      []store.QueueDepth
	oldest      []store.QueueWait
	undelivered int64
	hold        time.Duration
}

// dbCollector reports what every process shares in Postgres: River's
// unfinished jobs by queue and state, the age of each queue's oldest
// waiting job, the messages undelivered for longer than UndeliveredAfter,
// and the Retry-After hold on calls to Podero; read in four small queries,
// cached so that scrapes stay cheap.
type dbCollector struct {
	reading                          scrapeCache[dbReading]
	depth, oldest, undelivered, hold *prometheus.Desc
}

func newJobsCollector(pool *pgxpool.Pool) *dbCollector {
	read := func(ctx context.Context) (r dbReading, err error) {
		if r.depths, err = store.QueueDepths(ctx, pool); err != nil {
			return r, err
		}
		if r.oldest, err = store.OldestWaitingJobs(ctx, pool, queues); err != nil {
			return r, err
		}
		if r.undelivered, err = store.UndeliveredMessages(ctx, pool, UndeliveredAfter); err != nil {
			return r, err
		}
		r.hold, err = store.PoderoHoldLeft(ctx, pool)
		return r, err
	}
	return &dbCollector{reading: scrapeCache[dbReading]{read: read},
		depth: prometheus.NewDesc("reauth_queue_jobs",
			"Jobs waiting or running, by queue and state (refreshed at most every 15 s).", []string{"queue", "state"}, nil),
		oldest: prometheus.NewDesc("reauth_queue_oldest_job_seconds",
			"Age of the queue's oldest job waiting to run (available, or retryable or scheduled and due), since it became due; 0 when none waits (refreshed at most every 15 s).",
			[]string{"queue"}, nil),
		undelivered: prometheus.NewDesc("reauth_messages_undelivered",
			"Messages of open sessions due more than 15 minutes ago and not sent on any channel, their job still waiting, running or retrying (refreshed at most every 15 s).",
			nil, nil),
		hold: prometheus.NewDesc("reauth_podero_hold_seconds",
			"How long every process still sends nothing to Podero because of a Retry-After (429 or 503), 0 when not held (refreshed at most every 15 s).",
			nil, nil),
	}
}

func (c *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.oldest
	ch <- c.undelivered
	ch <- c.hold
}

func (c *dbCollector) Collect(ch chan<- prometheus.Metric) {
	r, ok := c.reading.get()
	if !ok {
		return
	}
	for _, d := range r.depths {
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(d.Jobs), d.Queue, d.State)
	}
	for _, q := range r.oldest {
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, q.Seconds, q.Queue)
	}
	ch <- prometheus.MustNewConstMetric(c.undelivered, prometheus.GaugeValue, float64(r.undelivered))
	ch <- prometheus.MustNewConstMetric(c.hold, prometheus.GaugeValue, r.hold.Seconds())
}

// BudgetReading is how Podero's rate limit is being spent, every process
// together (see store.Budget).
type BudgetReading struct {
	Rates        map[string]float64 // calls a second by purpose, about the last minute
	Waiting      int64              // reauthentication requests waiting
	DrainSeconds float64            // how long they take at the rate they get; +Inf: never
	// SyncLagSeconds is now minus the oldest last sync of a listed user;
	// SyncPassSeconds how long a full sync pass takes at the sync's
	// current rate (+Inf: it makes no calls).
	SyncLagSeconds, SyncPassSeconds float64
}

// WatchBudget exports what read returns (refreshed at most every 15 s) as
// reauth_podero_calls_per_second{purpose}, reauth_requests_waiting,
// reauth_backlog_drain_seconds, reauth_sync_lag_seconds and
// reauth_sync_pass_seconds.
func (m *Metrics) WatchBudget(read func(context.Context) (BudgetReading, error)) {
	if m == nil {
		return
	}
	m.Registry.MustRegister(&budgetCollector{reading: scrapeCache[BudgetReading]{read: read},
		rates: prometheus.NewDesc("reauth_podero_calls_per_second",
			"Calls to Podero a second by purpose (auth_session, renewal, sweep, user_lookup, sync, token, other; 0 for one without calls), every process together, over about the last minute.", []string{"purpose"}, nil),
		waiting: prometheus.NewDesc("reauth_requests_waiting", "Reauthentication requests (reauth_device jobs) not yet worked.", nil, nil),
		drain: prometheus.NewDesc("reauth_backlog_drain_seconds",
			"How long the waiting requests take at the rate of calls they get now (+Inf: they get none).", nil, nil),
		syncLag: prometheus.NewDesc("reauth_sync_lag_seconds", "Now minus the oldest last device sync of a user still listed.", nil, nil),
		syncPass: prometheus.NewDesc("reauth_sync_pass_seconds",
			"How long a full device sync pass takes at the sync's current rate (+Inf: it makes no calls).", nil, nil),
	})
}

// purposeRate is rates' calls a second for purpose p, 0 when absent; a
// purpose not in podero.Purposes counts as podero.PurposeOther, so the
// label set stays that list.
func purposeRate(rates map[string]float64, p string) float64 {
	r := rates[p]
	if p == podero.PurposeOther {
		for k, v := range rates {
			if !slices.Contains(podero.Purposes, k) {
				r += v
			}
		}
	}
	return r
}

type budgetCollector struct {
	reading                                  scrapeCache[BudgetReading]
	rates, waiting, drain, syncLag, syncPass *prometheus.Desc
}

func (b *budgetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{b.rates, b.waiting, b.drain, b.syncLag, b.syncPass} {
		ch <- d
	}
}

func (b *budgetCollector) Collect(ch chan<- prometheus.Metric) {
	last, ok := b.reading.get()
	if !ok {
		return
	}
	for _, p := range podero.Purposes {
		ch <- prometheus.MustNewConstMetric(b.rates, prometheus.GaugeValue, purposeRate(last.Rates, p), p)
	}
	ch <- prometheus.MustNewConstMetric(b.waiting, prometheus.GaugeValue, float64(last.Waiting))
	ch <- prometheus.MustNewConstMetric(b.drain, prometheus.GaugeValue, last.DrainSeconds)
	ch <- prometheus.MustNewConstMetric(b.syncLag, prometheus.GaugeValue, last.SyncLagSeconds)
	ch <- prometheus.MustNewConstMetric(b.syncPass, prometheus.GaugeValue, last.SyncPassSeconds)
}

// scrapeCache keeps what read returns for 15 s, so that scrapes stay
// cheap; a failed read keeps the last value.
type scrapeCache[T any] struct {
	read func(context.Context) (T, error)

	mu      sync.Mutex
	last    T
	fetched time.Time
}

// get returns the value, reading it again when it is older than 15 s (within
// 5 s), and whether any read has succeeded yet.
func (c *scrapeCache[T]) get() (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.fetched) > 15*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if v, err := c.read(ctx); err == nil {
			c.last, c.fetched = v, time.Now()
		}
	}
	return c.last, !c.fetched.IsZero()
}
