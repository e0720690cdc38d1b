// Package bench holds Posta's benchmarks: Go benchmarks of whole-server
// paths (run with go test -bench) and load generators in subdirectories
// that also drive reference servers (see the *.sh scripts).
package bench

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	gosmtp "github.com/emersion/go-smtp"

	"posta/internal/postatest"
)

// BenchmarkSMTPDeliver measures accepted messages through the MX port with
// durability on: b.N messages of 8 KiB from 16 concurrent connections, each
// acknowledged only once it is fsynced into the mailbox.
//
//	go test -run '^$' -bench SMTPDeliver -benchtime 2000x ./bench/
func BenchmarkSMTPDeliver(b *testing.B) {
	in := postatest.Start(b)
	addr := in.Addr(b, "smtp")
	body := bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789ab\r\n"), 8<<10/78)
	const conc = 16
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	var wg sync.WaitGroup
	work := make(chan int, b.N)
	for i := 0; i < b.N; i++ {
		work <- i
	}
	close(work)
	for c := 0; c < conc; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := gosmtp.Dial(addr)
			if err != nil {
				b.Error(err)
				return
			}
			defer cl.Close()
			for i := range work {
				msg := append([]byte(fmt.Sprintf("Subject: %d\r\n\r\n", i)), body...)
				if err := cl.SendMail("x@remote.test", []string{"alice@example.test"}, bytes.NewReader(msg)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}
