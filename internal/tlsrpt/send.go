package tlsrpt

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"time"

	"posta/internal/database"
)

// Options configure a Reporter.
type Options struct {
	DB *sql.DB
	// LookupTXT finds the _smtp._tls records.
	LookupTXT func(ctx context.Context, name string) ([]string, error)
	// Hostname is this server's name: the organization-name and the right
	// side of report ids.
	Hostname string
	// Submitter gives the reporting domain: the From of report mail, which
	// must be DKIM-signed by it (RFC 8460 3), so one of ours.
	Submitter func(ctx context.Context) string
	// Mail hands a report message to the mail system (local delivery or
	// the outbound queue, which signs it).
	Mail func(ctx context.Context, from, to string, msg []byte) error
	// HTTP posts reports to https: rua URIs; default a client with a
	// 30-second timeout.
	HTTP   *http.Client
	Now    func() time.Time
	Logger *slog.Logger
	// Delay is how long after midnight (UTC) the day's reports go out;
	// default random up to 4 hours (RFC 8460 4.1).
	Delay func() time.Duration
}

// Reporter records TLS results and sends the daily reports.
type Reporter struct {
	o   Options
	rec *recorder
}

// Open prepares the results table.
func Open(ctx context.Context, o Options) (*Reporter, error) {
	if err := database.Migrate(ctx, o.DB, "tlsrpt", migrations); err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if o.Delay == nil {
		o.Delay = func() time.Duration {
			n, _ := rand.Int(rand.Reader, big.NewInt(int64(4*time.Hour)))
			return time.Duration(n.Int64())
		}
	}
	return &Reporter{o: o, rec: &recorder{db: o.DB, now: o.Now, m: map[key]int64{}}}, nil
}

// Record counts one session's result.
func (r *Reporter) Record(res Result) { r.rec.record(res) }

// Flush adds the counts kept in memory to the database.
func (r *Reporter) Flush(ctx context.Context) error { return r.rec.flush(ctx) }

// Run flushes the counts every minute and sends the reports of past days
// once a day, until ctx ends (then it flushes a last time).
func (r *Reporter) Run(ctx context.Context) error {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	// Reports of days before this start (left by a stop) go soon.
	sendAt := r.o.Now().Add(time.Minute)
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return r.Flush(fctx)
		case <-tick.C:
		}
		if err := r.Flush(ctx); err != nil {
			r.o.Logger.Warn("tlsrpt: saving results failed", "err", err)
		}
		if now := r.o.Now(); !now.Before(sendAt) {
			r.SendPast(ctx)
			midnight := now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
			sendAt = midnight.Add(r.o.Delay())
		}
	}
}

// SendPast sends the reports of every day before today that has results.
func (r *Reporter) SendPast(ctx context.Context) {
	rs, err := r.o.DB.QueryContext(ctx, `SELECT DISTINCT day FROM tlsrpt_results WHERE day < ? ORDER BY day`, day(r.o.Now()))
	if err != nil {
		r.o.Logger.Warn("tlsrpt: listing days failed", "err", err)
		return
	}
	var days []string
	for rs.Next() {
		var d string
		if rs.Scan(&d) == nil {
			days = append(days, d)
		}
	}
	rs.Close()
	for _, d := range days {
		t, err := time.Parse(time.DateOnly, d)
		if err != nil {
			continue
		}
		if err := r.SendDay(ctx, t); err != nil {
			r.o.Logger.Warn("tlsrpt: sending reports failed", "day", d, "err", err)
		}
	}
}

// SendDay sends the reports of one day (UTC) to every domain that asks
// for them, then forgets that day's results.
func (r *Reporter) SendDay(ctx context.Context, t time.Time) error {
	if err := r.Flush(ctx); err != nil {
		return err
	}
	d := day(t)
	rs, err := r.o.DB.QueryContext(ctx, `SELECT DISTINCT domain FROM tlsrpt_results WHERE day = ? ORDER BY domain`, d)
	if err != nil {
		return fmt.Errorf("tlsrpt: domains: %w", err)
	}
	var domains []string
	for rs.Next() {
		var dom string
		if rs.Scan(&dom) == nil {
			domains = append(domains, dom)
		}
	}
	rs.Close()
	for _, dom := range domains {
		r.sendDomain(ctx, d, dom)
		if _, err := r.o.DB.ExecContext(ctx, `DELETE FROM tlsrpt_results WHERE day = ? AND domain = ?`, d, dom); err != nil {
			return fmt.Errorf("tlsrpt: forget %s: %w", dom, err)
		}
	}
	return nil
}

// sendDomain reports one day to one domain, if it publishes where to.
func (r *Reporter) sendDomain(ctx context.Context, d, domain string) {
	log := r.o.Logger.With("domain", domain, "day", d)
	txts, err := r.o.LookupTXT(ctx, "_smtp._tls."+domain)
	if err != nil {
		log.Debug("tlsrpt: no reporting policy", "err", err)
		return
	}
	ruas, err := ParseRecord(txts)
	if err != nil {
		log.Debug("tlsrpt: no usable reporting policy", "err", err)
		return
	}
	keys, counts, err := rows(ctx, r.o.DB, d, domain)
	if err != nil || len(keys) == 0 {
		return
	}
	start, _ := time.Parse(time.DateOnly, d)
	submitter := r.o.Hostname
	if r.o.Submitter != nil {
		if s := r.o.Submitter(ctx); s != "" {
			submitter = s
		}
	}
	unique := randomID()
	id := fmt.Sprintf("%s.%s.%s@%s", strings.ReplaceAll(d, "-", ""), domain, unique, r.o.Hostname)
	contact := "postmaster@" + submitter
	rep := build(keys, counts, submitter, contact, id, start)
	gz, err := gzipJSON(rep)
	if err != nil {
		log.Warn("tlsrpt: report not built", "err", err)
		return
	}
	name := fileName(submitter, domain, rep, unique)
	sent := false
	for _, rua := range ruas {
		var err error
		if addr, ok := strings.CutPrefix(rua, "mailto:"); ok {
			if r.o.Mail == nil {
				continue
			}
			msg := message(contact, addr, submitter, domain, "tlsrpt."+unique+"@"+r.o.Hostname, rep, gz, name, r.o.Now())
			err = r.o.Mail(ctx, contact, addr, msg)
		} else {
			err = r.post(ctx, rua, gz)
		}
		if err != nil {
			log.Warn("tlsrpt: report not delivered", "rua", rua, "err", err)
			continue
		}
		sent = true
		log.Info("tlsrpt: report sent", "rua", rua, "report_id", id)
	}
	if !sent {
		log.Warn("tlsrpt: no rua took the report")
	}
}

// post delivers a report by HTTPS (RFC 8460 5.4).
func (r *Reporter) post(ctx context.Context, uri string, gz []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, bytes.NewReader(gz))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/tlsrpt+gzip")
	resp, err := r.o.HTTP.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errors.New("HTTP " + resp.Status)
	}
	return nil
}

func randomID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
