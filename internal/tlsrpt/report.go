package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"strings"
	"time"
)

// Report is the JSON report (RFC 8460 4.4).
type Report struct {
	OrganizationName string        `json:"organization-name"`
	DateRange        DateRange     `json:"date-range"`
	ContactInfo      string        `json:"contact-info"`
	ReportID         string        `json:"report-id"`
	Policies         []PolicyEntry `json:"policies"`
}

// DateRange is the day the report covers.
type DateRange struct {
	Start time.Time `json:"start-datetime"`
	End   time.Time `json:"end-datetime"`
}

// PolicyEntry is one applied policy with its counts.
type PolicyEntry struct {
	Policy         PolicyInfo      `json:"policy"`
	Summary        Summary         `json:"summary"`
	FailureDetails []FailureDetail `json:"failure-details,omitempty"`
}

// PolicyInfo names the policy (RFC 8460 4.4 "policy").
type PolicyInfo struct {
	Type   string   `json:"policy-type"`
	String []string `json:"policy-string,omitempty"`
	Domain string   `json:"policy-domain"`
	MXHost []string `json:"mx-host,omitempty"`
}

// Summary counts the sessions (RFC 8460 4.2).
type Summary struct {
	Successful int64 `json:"total-successful-session-count"`
	Failed     int64 `json:"total-failure-session-count"`
}

// FailureDetail is one kind of failure (RFC 8460 4.3, 4.4).
type FailureDetail struct {
	ResultType          string `json:"result-type"`
	SendingMTAIP        string `json:"sending-mta-ip,omitempty"`
	ReceivingMXHostname string `json:"receiving-mx-hostname,omitempty"`
	ReceivingIP         string `json:"receiving-ip,omitempty"`
	FailedSessionCount  int64  `json:"failed-session-count"`
	FailureReasonCode   string `json:"failure-reason-code,omitempty"`
}

// build makes the report of one day's rows for one domain.
func build(keys []key, counts []int64, org, contact, id string, start time.Time) Report {
	r := Report{OrganizationName: org, ContactInfo: contact, ReportID: id,
		DateRange: DateRange{Start: start, End: start.Add(24*time.Hour - time.Second)}}
	index := map[[3]string]int{}
	for i, k := range keys {
		pk := [3]string{k.policyType, k.policy, k.mxPatterns}
		j, ok := index[pk]
		if !ok {
			pi := PolicyInfo{Type: k.policyType, Domain: k.domain}
			json.Unmarshal([]byte(k.policy), &pi.String)
			if k.policyType == PolicySTS {
				json.Unmarshal([]byte(k.mxPatterns), &pi.MXHost)
			}
			r.Policies = append(r.Policies, PolicyEntry{Policy: pi})
			j = len(r.Policies) - 1
			index[pk] = j
		}
		p := &r.Policies[j]
		if k.result == resultPassed {
			p.Summary.Successful += counts[i]
			continue
		}
		p.Summary.Failed += counts[i]
		p.FailureDetails = append(p.FailureDetails, FailureDetail{ResultType: k.result, SendingMTAIP: k.sendingIP,
			ReceivingMXHostname: k.mxHost, ReceivingIP: k.receivingIP, FailedSessionCount: counts[i], FailureReasonCode: k.reason})
	}
	return r
}

// gzipJSON is the report as sent (RFC 8460 5.2: gzip compressed).
func gzipJSON(r Report) ([]byte, error) {
	js, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("tlsrpt: %w", err)
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(js)
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("tlsrpt: %w", err)
	}
	return b.Bytes(), nil
}

// fileName is RFC 8460 5.1's: sender!policy-domain!begin!end!unique.json.gz.
func fileName(submitter, domain string, r Report, unique string) string {
	return fmt.Sprintf("%s!%s!%d!%d!%s.json.gz", submitter, domain, r.DateRange.Start.Unix(), r.DateRange.End.Unix(), unique)
}

// message is the report mail (RFC 8460 5.3): multipart/report with
// report-type tlsrpt, a text part and the gzipped JSON. TLS-Required: No
// (RFC 8689 5) lets it through whatever TLS problem it reports (RFC 8460
// 3: reports MUST be delivered despite TLS failures).
func message(from, to, submitter, domain, msgID string, r Report, gz []byte, name string, now time.Time) []byte {
	boundary := "tlsrpt-" + strings.NewReplacer("@", ".", "<", "", ">", "").Replace(msgID)
	var b strings.Builder
	h := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	h("From", "<"+from+">")
	h("To", "<"+to+">")
	h("Date", now.Format(time.RFC1123Z))
	h("Subject", fmt.Sprintf("Report Domain: %s Submitter: %s Report-ID: <%s>", domain, submitter, r.ReportID))
	h("Message-ID", "<"+msgID+">")
	h("TLS-Report-Domain", domain)
	h("TLS-Report-Submitter", submitter)
	h("TLS-Required", "No")
	h("Auto-Submitted", "auto-generated") // RFC 3834 5
	h("MIME-Version", "1.0")
	h("Content-Type", `multipart/report; report-type="tlsrpt"; boundary="`+boundary+`"`)
	b.WriteString("\r\n")
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n", boundary)
	fmt.Fprintf(&b, "This is an aggregate TLS report from %s for %s, %s (UTC).\r\n\r\n", submitter, domain, day(r.DateRange.Start))
	disp := mime.FormatMediaType("attachment", map[string]string{"filename": name})
	fmt.Fprintf(&b, "--%s\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: %s\r\n\r\n", boundary, disp)
	enc := base64.StdEncoding.EncodeToString(gz)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return []byte(b.String())
}
