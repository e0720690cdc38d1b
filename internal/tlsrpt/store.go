package tlsrpt

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"posta/internal/database"
)

var migrations = []string{
	// One row per day and distinct outcome; count is how many sessions
	// had it. policy and mx_patterns are JSON arrays of strings.
	`CREATE TABLE tlsrpt_results (
		day          TEXT NOT NULL,
		domain       TEXT NOT NULL,
		policy_type  TEXT NOT NULL,
		policy       TEXT NOT NULL,
		mx_patterns  TEXT NOT NULL,
		mx_host      TEXT NOT NULL,
		result       TEXT NOT NULL,
		sending_ip   TEXT NOT NULL,
		receiving_ip TEXT NOT NULL,
		reason       TEXT NOT NULL,
		count        INTEGER NOT NULL,
		PRIMARY KEY (day, domain, policy_type, policy, mx_patterns, mx_host, result, sending_ip, receiving_ip, reason)
	);`,
}

// key is one row of tlsrpt_results but its count.
type key struct {
	day, domain, policyType, policy, mxPatterns, mxHost, result, sendingIP, receivingIP, reason string
}

// recorder counts results in memory until flush adds them to the database.
type recorder struct {
	db  *sql.DB
	now func() time.Time
	mu  sync.Mutex
	m   map[key]int64
}

// maxReason bounds a failure-reason-code (RFC 8460 4.3.3: "a short text
// field").
const maxReason = 200

func jsonList(l []string) string {
	if l == nil {
		l = []string{}
	}
	b, _ := json.Marshal(l)
	return string(b)
}

func (r *recorder) record(res Result) {
	if res.Domain == "" {
		return
	}
	reason := res.Reason
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	k := key{day: day(r.now()), domain: res.Domain, policyType: res.PolicyType, policy: jsonList(res.Policy),
		mxPatterns: jsonList(res.MXPatterns), mxHost: res.MXHost, result: res.Type, sendingIP: res.SendingIP,
		receivingIP: res.ReceivingIP, reason: reason}
	if k.policyType == "" {
		k.policyType = PolicyNone
	}
	r.mu.Lock()
	r.m[k]++
	r.mu.Unlock()
}

// flush adds the counts kept in memory to the database.
func (r *recorder) flush(ctx context.Context) error {
	r.mu.Lock()
	m := r.m
	r.m = map[key]int64{}
	r.mu.Unlock()
	if len(m) == 0 {
		return nil
	}
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		r.putBack(m)
		return fmt.Errorf("tlsrpt: begin: %w", err)
	}
	defer tx.Rollback()
	for k, n := range m {
		if _, err := tx.ExecContext(ctx, `INSERT INTO tlsrpt_results (day, domain, policy_type, policy, mx_patterns, mx_host,
			result, sending_ip, receiving_ip, reason, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (day, domain, policy_type, policy, mx_patterns, mx_host, result, sending_ip, receiving_ip, reason)
			DO UPDATE SET count = count + excluded.count`,
			k.day, k.domain, k.policyType, k.policy, k.mxPatterns, k.mxHost, k.result, k.sendingIP, k.receivingIP, k.reason, n); err != nil {
			r.putBack(m)
			return fmt.Errorf("tlsrpt: record: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		r.putBack(m)
		return fmt.Errorf("tlsrpt: record: %w", err)
	}
	return nil
}

func (r *recorder) putBack(m map[key]int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, n := range m {
		r.m[k] += n
	}
}

// rows reads one day's results for one domain.
func rows(ctx context.Context, q database.Querier, d, domain string) ([]key, []int64, error) {
	rs, err := q.QueryContext(ctx, `SELECT policy_type, policy, mx_patterns, mx_host, result, sending_ip, receiving_ip, reason, count
		FROM tlsrpt_results WHERE day = ? AND domain = ? ORDER BY policy_type, policy, mx_patterns, result, mx_host, sending_ip, receiving_ip, reason`, d, domain)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsrpt: results: %w", err)
	}
	defer rs.Close()
	var keys []key
	var counts []int64
	for rs.Next() {
		k := key{day: d, domain: domain}
		var n int64
		if err := rs.Scan(&k.policyType, &k.policy, &k.mxPatterns, &k.mxHost, &k.result, &k.sendingIP, &k.receivingIP, &k.reason, &n); err != nil {
			return nil, nil, fmt.Errorf("tlsrpt: results: %w", err)
		}
		keys = append(keys, k)
		counts = append(counts, n)
	}
	return keys, counts, rs.Err()
}

// day is the UTC date a report covers (RFC 8460 4.1: 00:00-24:00 UTC).
func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }
