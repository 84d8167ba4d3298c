package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/hostlist"
)

// csvColumns are the columns a CSV file may have; the first three are
// required, and user_id or external_user_id.
var csvColumns = []string{"org_id", "device_kind", "device_id", "user_id", "external_user_id", "email", "locale", "success_url", "cancel_url"}

// csvBatch is how many rows go into one transaction.
const csvBatch = 500

// csvReport is what a CSV enqueue did.
type csvReport struct {
	Enqueued   int      `json:"enqueued"`
	Duplicates int      `json:"duplicates"`
	Rejected   []string `json:"rejected"` // "row N: what is wrong"
}

// enqueueCSV validates every row of the CSV file at path and enqueues the
// valid ones in batches, each job with maxAttempts attempts; a rejected row
// never stops the others.
// progress, when not nil, is told how far the file has been read (rows and
// bytes of size) after every batch.
func enqueueCSV(ctx context.Context, pool *pgxpool.Pool, path, reason string, redirect hostlist.List, maxAttempts int,
	progress func(rep csvReport, read, size int64)) (csvReport, error) {
	var rep csvReport
	f, err := os.Open(path)
	if err != nil {
		return rep, fmt.Errorf("open CSV: %w", err)
	}
	defer f.Close()
	var size int64
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1 // checked per row, to report rather than stop
	header, err := r.Read()
	if err != nil {
		return rep, fmt.Errorf("CSV header: %w", errors.Join(err, errors.New("want a header row naming the columns")))
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if !contains(csvColumns, h) {
			return rep, fmt.Errorf("CSV header: unknown column %q (columns: %s)", h, strings.Join(csvColumns, ", "))
		}
		if _, dup := col[h]; dup {
			return rep, fmt.Errorf("CSV header: column %q twice", h)
		}
		col[h] = i
	}
	for _, required := range csvColumns[:3] {
		if _, ok := col[required]; !ok {
			return rep, fmt.Errorf("CSV header: missing column %q", required)
		}
	}
	_, hasUser := col["user_id"]
	if _, hasExt := col["external_user_id"]; !hasUser && !hasExt {
		return rep, errors.New(`CSV header: missing column "user_id" (or "external_user_id")`)
	}

	var batch []reauth.DeviceArgs
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			res, err := reauth.EnqueueManyWith(ctx, tx, batch, reauth.EnqueueOpts{MaxAttempts: maxAttempts})
			if err != nil {
				return err
			}
			for _, r := range res {
				if r.Duplicate {
					rep.Duplicates++
				} else {
					rep.Enqueued++
				}
			}
			return nil
		})
		batch = batch[:0]
		if progress != nil {
			read, _ := f.Seek(0, io.SeekCurrent)
			progress(rep, read, size)
		}
		return err
	}
	for row := 2; ; row++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				rep.Rejected = append(rep.Rejected, fmt.Sprintf("row %d: not valid CSV: %v", row, pe.Err))
				continue
			}
			return rep, err
		}
		if len(rec) != len(header) {
			rep.Rejected = append(rep.Rejected, fmt.Sprintf("row %d: %d fields, the header has %d", row, len(rec), len(header)))
			continue
		}
		get := func(name string) string {
			if i, ok := col[name]; ok {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		a, err := reauth.DeviceArgs{
			OrgID: get("org_id"), UserID: get("user_id"), ExternalUserID: get("external_user_id"), DeviceKind: reauth.DeviceKind(get("device_kind")), DeviceID: get("device_id"),
			Email: get("email"), Locale: get("locale"), SuccessURL: get("success_url"), CancelURL: get("cancel_url"), Reason: reason,
		}.Check(redirect)
		if err != nil {
			rep.Rejected = append(rep.Rejected, fmt.Sprintf("row %d: %s", row, strings.ReplaceAll(err.Error(), "\n", "; ")))
			continue
		}
		if batch = append(batch, a); len(batch) == csvBatch {
			if err := flush(); err != nil {
				return rep, err
			}
		}
	}
	return rep, flush()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
