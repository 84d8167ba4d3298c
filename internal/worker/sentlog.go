package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// sentRecordTimeout bounds the recording of a sent message, its retries
// included.
const sentRecordTimeout = 20 * time.Second

// sentLog commits the records of the messages concurrent workers sent in
// one transaction a batch: a group commit. A worker whose message went out
// adds its record and waits; one worker at a time leads, recording every
// record waiting when it begins (its own among them) in one transaction,
// then hands the lead to the first that arrived meanwhile, and returns.
// Each waits for its own record's commit, so what a crash can leave behind
// is what it was with a transaction each: a message out and not recorded,
// which its job sends again under the same key. When a batch's transaction
// fails, each of its records is tried alone, so that one record's error is
// its own worker's only.
type sentLog struct {
	mu      sync.Mutex
	pending []*sentEntry
	leading bool
}

type sentEntry struct {
	rec  sentRecord
	done chan error // its record's outcome, or errLead
}

// errLead tells a waiting entry's worker to lead the next batch.
var errLead = errors.New("lead the next batch")

// record adds rec and returns once it committed, or its error.
func (l *sentLog) record(cfg Config, client *river.Client[pgx.Tx], rec sentRecord) error {
	e := &sentEntry{rec: rec, done: make(chan error, 1)}
	l.mu.Lock()
	l.pending = append(l.pending, e)
	lead := !l.leading
	l.leading = true
	l.mu.Unlock()
	if !lead {
		if err := <-e.done; !errors.Is(err, errLead) {
			return err
		}
	}
	l.mu.Lock()
	batch := l.pending
	l.pending = nil
	l.mu.Unlock()
	l.commit(cfg, client, batch)
	l.mu.Lock()
	if len(l.pending) > 0 {
		l.pending[0].done <- errLead
	} else {
		l.leading = false
	}
	l.mu.Unlock()
	return <-e.done
}

// commit records batch in one transaction, or each alone when that fails,
// and tells each entry its outcome.
func (l *sentLog) commit(cfg Config, client *river.Client[pgx.Tx], batch []*sentEntry) {
	try := func(entries []*sentEntry) error {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(entries[0].rec.ctx), sentRecordTimeout)
		defer cancel()
		recs := make([]sentRecord, len(entries))
		for i, e := range entries {
			recs[i] = e.rec
		}
		return pgx.BeginFunc(ctx, cfg.Pool, func(tx pgx.Tx) error {
			return cfg.recordSent(ctx, client, tx, recs)
		})
	}
	err := try(batch)
	if err == nil || len(batch) == 1 {
		for _, e := range batch {
			e.done <- err
		}
		return
	}
	for _, e := range batch {
		e.done <- try([]*sentEntry{e})
	}
}
