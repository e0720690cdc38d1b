package mx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MTA-STS policy modes (RFC 8461 3.2).
const (
	stsEnforce = "enforce"
	stsTesting = "testing"
	stsNone    = "none"
)

const (
	stsMaxBody     = 64 << 10        // RFC 8461 3.3: suggested maximum policy size
	stsFetchLimit  = time.Minute     // RFC 8461 3.3: suggested timeout
	stsRetryAfter  = 5 * time.Minute // RFC 8461 3.3: no refetch of a failed id sooner
	stsMaxAge      = 31557600        // RFC 8461 3.2: max_age ceiling, seconds
	stsCacheLimit  = 10000           // domains whose policy we remember
	stsMaxMXFields = 100             // mx lines kept from one policy
	stsTXTPrefix   = "_mta-sts."     // RFC 8461 3.1
	stsWellKnown   = "/.well-known/mta-sts.txt"
	stsMaxIDLength = 32                // RFC 8461 3.1: sts-id is 1*32(ALPHA / DIGIT)
	stsHTTPAccept  = "text/plain"      // RFC 8461 3.2: the media type to check
	stsUserAgent   = "posta-mta-sts/1" // for the policy host's logs
)

// stsPolicy is one fetched MTA-STS policy.
type stsPolicy struct {
	ID      string // from the TXT record it was fetched for
	Mode    string
	MX      []string
	MaxAge  time.Duration
	Fetched time.Time
}

func (p *stsPolicy) expired(now time.Time) bool { return now.Sub(p.Fetched) >= p.MaxAge }

// matchMX reports whether host is allowed by the policy's mx patterns
// (RFC 8461 4.1): exact, or "*." standing for exactly one left-most label.
func (p *stsPolicy) matchMX(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pat := range p.MX {
		if suffix, ok := strings.CutPrefix(pat, "*."); ok {
			label, rest, found := strings.Cut(host, ".")
			if found && label != "" && rest == suffix {
				return true
			}
			continue
		}
		if host == pat {
			return true
		}
	}
	return false
}

// parseSTSRecord returns the id of the one valid "_mta-sts" TXT record, or
// "" when there is none or more than one (RFC 8461 3.1).
func parseSTSRecord(txts []string) string {
	var ids []string
	for _, txt := range txts {
		fields := strings.Split(txt, ";")
		if strings.TrimRight(fields[0], " \t") != "v=STSv1" {
			// "records that do not begin with v=STSv1; are discarded"
			continue
		}
		id, valid := "", len(fields) > 1
		for i, f := range fields[1:] {
			f = strings.Trim(f, " \t")
			if f == "" && i == len(fields)-2 {
				break // the optional trailing delimiter
			}
			k, v, ok := strings.Cut(f, "=")
			if !ok || k == "" || v == "" {
				valid = false
				break
			}
			if k == "id" && id == "" {
				id = v
			}
		}
		if valid && validSTSID(id) {
			ids = append(ids, id)
		} else {
			ids = append(ids, "") // counted, so that two records still mean none
		}
	}
	if len(ids) != 1 {
		return ""
	}
	return ids[0]
}

func validSTSID(id string) bool {
	if id == "" || len(id) > stsMaxIDLength {
		return false
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// parseSTSPolicy parses a policy body (RFC 8461 3.2).
func parseSTSPolicy(body string) (*stsPolicy, error) {
	p := &stsPolicy{}
	seen := map[string]bool{}
	maxAge := int64(-1)
	for line := range strings.SplitSeq(body, "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("policy line %q has no colon", line)
		}
		v = strings.Trim(v, " \t")
		if k != "mx" {
			// "If any non-repeated field ... is duplicated, all
			// entries except for the first SHALL be ignored."
			if seen[k] {
				continue
			}
			seen[k] = true
		}
		switch k {
		case "version":
			if v != "STSv1" {
				return nil, fmt.Errorf("policy version %q", v)
			}
		case "mode":
			if v != stsEnforce && v != stsTesting && v != stsNone {
				return nil, fmt.Errorf("policy mode %q", v)
			}
			p.Mode = v
		case "max_age":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || len(v) > 10 {
				return nil, fmt.Errorf("policy max_age %q", v)
			}
			maxAge = min(n, stsMaxAge)
		case "mx":
			if v == "" {
				return nil, errors.New("policy mx is empty")
			}
			if len(p.MX) < stsMaxMXFields {
				p.MX = append(p.MX, strings.ToLower(strings.TrimSuffix(v, ".")))
			}
		}
	}
	switch {
	case !seen["version"]:
		return nil, errors.New("policy has no version")
	case p.Mode == "":
		return nil, errors.New("policy has no mode")
	case maxAge < 0:
		return nil, errors.New("policy has no max_age")
	case len(p.MX) == 0 && p.Mode != stsNone:
		return nil, errors.New("policy has no mx")
	}
	p.MaxAge = time.Duration(maxAge) * time.Second
	return p, nil
}

// stsCache holds the policies of the domains we sent to, by domain.
type stsCache struct {
	resolver Resolver
	client   *http.Client
	log      func(msg string, args ...any)

	mu      sync.Mutex
	entries map[string]*stsEntry
}

type stsEntry struct {
	policy   *stsPolicy // last good policy, possibly expired
	failedID string     // the id whose fetch failed last
	failedAt time.Time
}

func newSTSCache(r Resolver, hc *http.Client, log func(string, ...any)) *stsCache {
	if hc == nil {
		hc = &http.Client{}
	}
	c := *hc // a copy: the redirect rule below is ours to set
	// RFC 8461 3.3: "HTTP 3xx redirects MUST NOT be followed".
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &stsCache{resolver: r, client: &c, log: log, entries: map[string]*stsEntry{}}
}

// policy returns the MTA-STS policy to apply to domain, or nil (none, or
// mode "none"). It follows RFC 8461 5.1 step 1 and 3.3.
func (c *stsCache) policy(ctx context.Context, domain string) *stsPolicy {
	now := time.Now()
	txts, err := c.resolver.LookupTXT(ctx, stsTXTPrefix+domain)
	id := ""
	if err == nil {
		id = parseSTSRecord(txts)
	}

	c.mu.Lock()
	e := c.entries[domain]
	var cached *stsPolicy
	if e != nil && e.policy != nil && !e.policy.expired(now) {
		cached = e.policy
	}
	fetch := id != "" && (cached == nil || cached.ID != id) &&
		(e == nil || e.failedID != id || now.Sub(e.failedAt) >= stsRetryAfter)
	c.mu.Unlock()

	if !fetch {
		// RFC 8461 3.3: no live policy, but a cached unexpired one
		// still applies; the TXT record's absence does not remove it.
		return active(cached)
	}
	// No lock across the HTTPS fetch (it may take a minute).
	p, err := c.fetch(ctx, domain)
	c.mu.Lock()
	defer c.mu.Unlock()
	e = c.entries[domain]
	if e == nil {
		c.evict(now)
		e = &stsEntry{}
		c.entries[domain] = e
	}
	if err != nil {
		e.failedID, e.failedAt = id, now
		// RFC 8461 3.3: alert administrators when a refresh fails.
		c.log("mta-sts policy fetch failed", "domain", domain, "id", id, "err", err)
		return active(cached)
	}
	p.ID, p.Fetched = id, now
	e.policy, e.failedID = p, ""
	return active(p)
}

// active hides a policy in mode "none": RFC 8461 5 treats the domain as
// having no policy.
func active(p *stsPolicy) *stsPolicy {
	if p == nil || p.Mode == stsNone {
		return nil
	}
	return p
}

// evict keeps the cache bounded: expired policies go first, then any.
func (c *stsCache) evict(now time.Time) {
	if len(c.entries) < stsCacheLimit {
		return
	}
	for d, e := range c.entries {
		if e.policy == nil || e.policy.expired(now) {
			delete(c.entries, d)
		}
	}
	for d := range c.entries {
		if len(c.entries) < stsCacheLimit {
			break
		}
		delete(c.entries, d)
	}
}

// fetch gets https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461
// 3.2, 3.3). The client's TLS verifies the certificate for the policy host.
func (c *stsCache) fetch(ctx context.Context, domain string) (*stsPolicy, error) {
	ctx, cancel := context.WithTimeout(ctx, stsFetchLimit)
	defer cancel()
	url := "https://mta-sts." + domain + stsWellKnown
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("mta-sts: %w", err)
	}
	req.Header.Set("User-Agent", stsUserAgent)
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mta-sts: %w", err)
	}
	defer resp.Body.Close()
	// RFC 8461 3.3: only a 200 counts.
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("mta-sts: %s: HTTP status %d", url, resp.StatusCode)
	}
	// RFC 8461 3.2: senders SHOULD check the media type is text/plain.
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != stsHTTPAccept {
		return nil, fmt.Errorf("mta-sts: %s: media type %q, want text/plain", url, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, stsMaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("mta-sts: %s: %w", url, err)
	}
	if len(body) > stsMaxBody {
		return nil, fmt.Errorf("mta-sts: %s: policy larger than %d bytes", url, stsMaxBody)
	}
	p, err := parseSTSPolicy(string(body))
	if err != nil {
		return nil, fmt.Errorf("mta-sts: %s: %w", url, err)
	}
	return p, nil
}
