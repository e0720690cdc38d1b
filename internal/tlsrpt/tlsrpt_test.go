package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"posta/internal/database"
)

func TestParseRecord(t *testing.T) {
	for _, c := range []struct {
		txts []string
		want []string
	}{
		{[]string{"v=TLSRPTv1; rua=mailto:reports@example.com"}, []string{"mailto:reports@example.com"}},
		{[]string{"v=TLSRPTv1;rua=https://reporting.example.com/v1/tlsrpt"}, []string{"https://reporting.example.com/v1/tlsrpt"}},
		{[]string{"v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@x.test, https://r.x.test/p ;ext=1;"},
			[]string{"mailto:a@x.test", "https://r.x.test/p"}},
		{[]string{"v=TLSRPTv1; rua=mailto:a%40b@x.test,ftp://x.test/,mailto:bad"}, nil},       // nothing usable
		{[]string{"v=TLSRPTv1; rua=mailto:a@x.test", "v=TLSRPTv1; rua=mailto:b@x.test"}, nil}, // two records
		{[]string{"v=TLSRPTv1"}, nil},
		{[]string{"v=TLSRPTv1; rua=mailto:a@x.test; rua=mailto:b@x.test"}, nil},
		{[]string{"v=TLSRPTv10; rua=mailto:a@x.test"}, nil},
	} {
		got, err := ParseRecord(c.txts)
		if c.want == nil {
			if err == nil {
				t.Errorf("ParseRecord(%q) = %v, want an error", c.txts, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseRecord(%q) = %v, %v; want %v", c.txts, got, err, c.want)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add("v=TLSRPTv1; rua=mailto:reports@example.com,https://r.example.com/x")
	f.Add("v=TLSRPTv1;;rua=")
	f.Add("v=TLSRPTv1; rua=mailto:%zz@x")
	f.Fuzz(func(t *testing.T, txt string) {
		ruas, err := ParseRecord([]string{txt})
		if err == nil && len(ruas) == 0 {
			t.Fatal("no error and no rua")
		}
		for _, u := range ruas {
			if !strings.HasPrefix(u, "mailto:") && !strings.HasPrefix(strings.ToLower(u), "https:") {
				t.Fatalf("rua %q", u)
			}
		}
	})
}

type sentMail struct {
	from, to string
	msg      []byte
}

// TestDailyReport records results of one day, sends that day's reports,
// and checks the mail (RFC 8460 5.3) and the HTTPS POST (5.4) carry the
// same JSON report (4.4), then that the day is forgotten.
func TestDailyReport(t *testing.T) {
	ctx := context.Background()
	db, err := database.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	var mu sync.Mutex
	var posted [][]byte
	var postType string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		posted, postType = append(posted, b), r.Header.Get("Content-Type")
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(srv.Close)

	now := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	var mails []sentMail
	txt := map[string][]string{
		"_smtp._tls.b.test": {"v=TLSRPTv1; rua=mailto:tlsrpt@b.test," + srv.URL + "/report"},
	}
	r, err := Open(ctx, Options{DB: db, Hostname: "mx.a.test", Now: func() time.Time { return now },
		Submitter: func(context.Context) string { return "a.test" },
		LookupTXT: func(_ context.Context, name string) ([]string, error) {
			if v, ok := txt[name]; ok {
				return v, nil
			}
			return nil, errors.New("NXDOMAIN")
		},
		Mail: func(_ context.Context, from, to string, msg []byte) error {
			mails = append(mails, sentMail{from, to, msg})
			return nil
		},
		HTTP: srv.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	sts := Result{Domain: "b.test", PolicyType: PolicySTS, Policy: []string{"version: STSv1", "mode: enforce", "mx: mx.b.test", "max_age: 86400"},
		MXPatterns: []string{"mx.b.test"}, MXHost: "mx.b.test", SendingIP: "192.0.2.1", ReceivingIP: "192.0.2.2"}
	for range 3 {
		r.Record(sts)
	}
	bad := sts
	bad.Type, bad.Reason = CertificateExpired, "x509: certificate has expired"
	r.Record(bad)
	if err := r.Flush(ctx); err != nil { // part of the day in the database,
		t.Fatal(err)
	}
	r.Record(bad)                                           // part in memory
	r.Record(Result{Domain: "c.test", MXHost: "mx.c.test"}) // no TLSRPT record: no report

	if err := r.SendDay(ctx, now); err != nil {
		t.Fatal(err)
	}
	if len(mails) != 1 {
		t.Fatalf("%d report mails, want 1", len(mails))
	}
	m := mails[0]
	if m.from != "postmaster@a.test" || m.to != "tlsrpt@b.test" {
		t.Errorf("report mail from %s to %s", m.from, m.to)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(m.msg))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"TLS-Report-Domain": "b.test", "TLS-Report-Submitter": "a.test", "TLS-Required": "No", "From": "<postmaster@a.test>",
	} {
		if got := msg.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if s := msg.Header.Get("Subject"); !strings.HasPrefix(s, "Report Domain: b.test Submitter: a.test Report-ID: <20261125.b.test.") {
		t.Errorf("Subject %q", s)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "tlsrpt" {
		t.Fatalf("Content-Type %q", msg.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	if p, err := mr.NextPart(); err != nil || !strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("first part: %v", err)
	}
	p, err := mr.NextPart()
	if err != nil || p.Header.Get("Content-Type") != "application/tlsrpt+gzip" {
		t.Fatalf("second part %v: %v", p.Header, err)
	}
	if _, dp, _ := mime.ParseMediaType(p.Header.Get("Content-Disposition")); !strings.HasPrefix(dp["filename"], "a.test!b.test!1795564800!1795651199!") ||
		!strings.HasSuffix(dp["filename"], ".json.gz") {
		t.Errorf("file name %q", dp["filename"])
	}
	gz, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, p))
	if err != nil {
		t.Fatal(err)
	}
	rep := decode(t, gz)
	want := Report{OrganizationName: "a.test", ContactInfo: "postmaster@a.test", ReportID: rep.ReportID,
		DateRange: DateRange{Start: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 25, 23, 59, 59, 0, time.UTC)},
		Policies: []PolicyEntry{{
			Policy:  PolicyInfo{Type: "sts", String: sts.Policy, Domain: "b.test", MXHost: []string{"mx.b.test"}},
			Summary: Summary{Successful: 3, Failed: 2},
			FailureDetails: []FailureDetail{{ResultType: "certificate-expired", SendingMTAIP: "192.0.2.1", ReceivingMXHostname: "mx.b.test",
				ReceivingIP: "192.0.2.2", FailedSessionCount: 2, FailureReasonCode: "x509: certificate has expired"}},
		}}}
	if !reflect.DeepEqual(rep, want) {
		t.Errorf("report\n%+v\nwant\n%+v", rep, want)
	}
	mu.Lock()
	if len(posted) != 1 || postType != "application/tlsrpt+gzip" {
		t.Fatalf("%d POSTs (type %q), want 1", len(posted), postType)
	} else if got := decode(t, posted[0]); !reflect.DeepEqual(got, rep) {
		t.Errorf("POSTed report differs from the mailed one:\n%+v", got)
	}
	mu.Unlock()

	// The day is forgotten: nothing goes out twice.
	var n int
	db.QueryRow(`SELECT count(*) FROM tlsrpt_results`).Scan(&n)
	if n != 0 {
		t.Errorf("%d rows left after the day's reports", n)
	}
	if err := r.SendDay(ctx, now); err != nil || len(mails) != 1 {
		t.Errorf("second SendDay: %v, %d mails", err, len(mails))
	}
}

func decode(t *testing.T, gz []byte) Report {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	js, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(js, &r); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	// RFC 8460 4.4: the field names as the schema spells them.
	for _, k := range []string{`"organization-name"`, `"date-range"`, `"start-datetime"`, `"report-id"`, `"policies"`,
		`"total-successful-session-count"`, `"policy-domain"`} {
		if !bytes.Contains(js, []byte(k)) {
			t.Errorf("report lacks %s: %s", k, js)
		}
	}
	return r
}
