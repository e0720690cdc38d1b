// Command smtpload is an SMTP load generator: C concurrent clients each send
// N messages of S KiB over one connection (MAIL, RCPT, DATA per message) and
// it reports accepted messages per second and latency percentiles of the
// DATA-to-250 step, which is where a server's durability cost shows.
//
//	go run ./bench/smtpload -addr 127.0.0.1:10025 -c 16 -n 200 -size 8 -rcpt bench@example.test
//
// The same command runs against any SMTP server (Posta, Postfix), so one run
// gives comparable figures.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"math/rand"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:25", "server host:port")
	conc := flag.Int("c", 8, "concurrent clients")
	per := flag.Int("n", 100, "messages per client")
	sizeKiB := flag.Int("size", 8, "message size in KiB")
	from := flag.String("from", "load@sender.test", "MAIL FROM")
	rcpt := flag.String("rcpt", "bench@example.test", "RCPT TO (comma-separated for several)")
	starttls := flag.Bool("starttls", false, "use STARTTLS (certificate not verified)")
	label := flag.String("label", "", "label printed with the result line")
	seed := flag.Int64("seed", 1, "random seed for message bodies")
	flag.Parse()

	body := makeBody(*sizeKiB<<10, *seed)
	rcpts := strings.Split(*rcpt, ",")
	var ok, failed atomic.Int64
	lat := make([][]time.Duration, *conc)
	var wg sync.WaitGroup
	start := time.Now()
	var firstErr atomic.Value
	for i := 0; i < *conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dial(*addr, *starttls)
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				failed.Add(int64(*per))
				return
			}
			defer c.Close()
			for j := 0; j < *per; j++ {
				msg := fmt.Sprintf("Message-ID: <%d.%d@load>\r\n%s", i, j, body)
				t0 := time.Now()
				if err := send(c, *from, rcpts, msg); err != nil {
					firstErr.CompareAndSwap(nil, err)
					failed.Add(1)
					c.Reset()
					continue
				}
				lat[i] = append(lat[i], time.Since(t0))
				ok.Add(1)
			}
			c.Quit()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(float64(len(all))*p))]
	}
	fmt.Printf("%s accepted=%d failed=%d elapsed=%.2fs rate=%.1f msg/s p50=%s p90=%s p99=%s max=%s\n",
		*label, ok.Load(), failed.Load(), el.Seconds(), float64(ok.Load())/el.Seconds(),
		pct(0.5).Round(time.Microsecond), pct(0.9).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), pct(1).Round(time.Microsecond))
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "first error: %v\n", e)
	}
	if failed.Load() > 0 {
		os.Exit(1)
	}
}

func dial(addr string, starttls bool) (*smtp.Client, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	var c *smtp.Client
	if starttls {
		// The benchmark measures throughput, not certificate handling.
		c, err = smtp.NewClientStartTLS(conn, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			conn.Close()
			return nil, err
		}
		return c, nil
	}
	c = smtp.NewClient(conn)
	if err := c.Hello("load.test"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func send(c *smtp.Client, from string, rcpts []string, msg string) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	return w.Close()
}

// makeBody builds a plausible message of about size bytes: headers and
// 76-column text lines, deterministic for a seed.
func makeBody(size int, seed int64) string {
	r := rand.New(rand.NewSource(seed))
	var b strings.Builder
	b.WriteString("From: Load <load@sender.test>\r\nTo: bench@example.test\r\nSubject: load test\r\n")
	b.WriteString("Date: Wed, 25 Nov 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	const letters = "abcdefghijklmnopqrstuvwxyz      "
	for b.Len() < size {
		line := make([]byte, 76)
		for i := range line {
			line[i] = letters[r.Intn(len(letters))]
		}
		b.Write(line)
		b.WriteString("\r\n")
	}
	return b.String()
}
