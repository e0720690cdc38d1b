package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"posta/internal/database"
	"posta/internal/queue"
)

const queueLong = `Inspect and manage the outbound queue: mail from local users to other
domains waiting to be delivered, retried, or bounced.

The commands work on a stopped or running server alike. A running server's
queue worker sees a change made here when it next looks at the database: it
polls at least every 30 seconds, so "retry" and "release" take effect within
that time. A dropped message's body file is removed by the server's queue
worker (at its next wake-up, or at its next start if it is not running).`

func newQueueCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use: "queue", Short: "Inspect and manage the outbound mail queue", Long: queueLong,
		// Runnable, so that a mistyped subcommand is an error (exit 2), not help.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List queued messages, oldest first",
		Args:  cobra.NoArgs,
		RunE: g.withQueue(func(cmd *cobra.Command, args []string, q *queue.Queue) error {
			ms, err := q.List(cmd.Context())
			if err != nil {
				return err
			}
			now := time.Now()
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tAGE\tFROM\tTO\tATTEMPTS\tNEXT\tSTATUS")
			for _, m := range ms {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", m.ID, shortDuration(now.Sub(m.Created)), sender(m.MailFrom),
					recipientsCell(m), m.Attempts, nextCell(m, now), clip(statusCell(m), 72))
			}
			return tw.Flush()
		}),
	}, &cobra.Command{
		Use:   "show ID",
		Short: "Show a queued message: its envelope and each recipient's state and last reply",
		Args:  cobra.ExactArgs(1),
		RunE: g.withQueue(func(cmd *cobra.Command, args []string, q *queue.Queue) error {
			id, err := parseQueueID(args[0])
			if err != nil {
				return err
			}
			d, err := q.Show(cmd.Context(), id)
			if err != nil {
				return err
			}
			printDetail(g.stdout, d, time.Now())
			return nil
		}),
	}, &cobra.Command{
		Use:   "retry ID|all",
		Short: "Make a message (or every message not held) due now",
		Args:  cobra.ExactArgs(1),
		RunE: g.withQueue(func(cmd *cobra.Command, args []string, q *queue.Queue) error {
			if args[0] == "all" {
				n, err := q.RetryAll(cmd.Context())
				if err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "%d messages due now\n", n)
				return nil
			}
			id, err := parseQueueID(args[0])
			if err != nil {
				return err
			}
			if err := q.Retry(cmd.Context(), id); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "message %d is due now\n", id)
			if d, err := q.Show(cmd.Context(), id); err == nil && d.Message.Held {
				fmt.Fprintf(g.stdout, "it is held: send it with posta queue release %d\n", id)
			}
			return nil
		}),
	}, &cobra.Command{
		Use:   "drop ID",
		Short: "Remove a message from the queue without sending it or any bounce",
		Args:  cobra.ExactArgs(1),
		RunE: g.withQueue(func(cmd *cobra.Command, args []string, q *queue.Queue) error {
			id, err := parseQueueID(args[0])
			if err != nil {
				return err
			}
			if _, err := q.Drop(cmd.Context(), id); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "dropped message %d\n", id)
			return nil
		}),
	}, &cobra.Command{
		Use:   "hold ID",
		Short: "Keep a message from being sent until it is released",
		Args:  cobra.ExactArgs(1),
		RunE: g.withQueue(func(cmd *cobra.Command, args []string, q *queue.Queue) error {
			id, err := parseQueueID(args[0])
			if err != nil {
				return err
			}
			if err := q.Hold(cmd.Context(), id); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "held message %d\n", id)
			return nil
		}),
	}, &cobra.Command{
		Use:   "release ID",
		Short: "Let a held message be sent again",
		Args:  cobra.ExactArgs(1),
		RunE: g.withQueue(func(cmd *cobra.Command, args []string, q *queue.Queue) error {
			id, err := parseQueueID(args[0])
			if err != nil {
				return err
			}
			if err := q.Release(cmd.Context(), id); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "released message %d\n", id)
			return nil
		}),
	})
	return cmd
}

// withQueue adapts a command body that needs the queue: it opens the
// configured data directory's database, runs fn, and closes it.
func (g *globals) withQueue(fn func(cmd *cobra.Command, args []string, q *queue.Queue) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		cfg, err := g.loadConfig()
		if err != nil {
			return err
		}
		db, err := database.Open(cfg.DataDir)
		if err != nil {
			return err
		}
		defer db.Close()
		q, err := queue.Open(cmd.Context(), db)
		if err != nil {
			return err
		}
		return fn(cmd, args, q)
	}
}

func parseQueueID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usageError{fmt.Errorf("bad message id %q: want the number posta queue list shows", s)}
	}
	return id, nil
}

func sender(from string) string {
	if from == "" {
		return "<>"
	}
	return from
}

func recipientsCell(m queue.Message) string {
	if len(m.Recipients) == 0 {
		return "-"
	}
	s := m.Recipients[0].Address
	if n := len(m.Recipients) - 1; n > 0 {
		s += fmt.Sprintf(" +%d", n)
	}
	return s
}

func nextCell(m queue.Message, now time.Time) string {
	switch {
	case m.Held:
		return "held"
	case m.Sending:
		return "sending"
	case !m.NextAttempt.After(now):
		return "now"
	}
	return "in " + shortDuration(m.NextAttempt.Sub(now))
}

func statusCell(m queue.Message) string {
	var s string
	switch {
	case m.Held:
		s = "held"
	case m.Sending:
		s = "sending"
	case m.Attempts == 0:
		s = "queued"
	default:
		s = "deferred"
	}
	if m.LastError != "" {
		s += ": " + m.LastError
	}
	return s
}

// shortDuration: 45s, 14m, 2h5m, 3d4h.
func shortDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	default:
		days, h := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
		if h == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, h)
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8Start(s[n]) {
		n--
	}
	return s[:n] + "..."
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

func when(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	s := t.Local().Format("2006-01-02 15:04:05 MST")
	if d := now.Sub(t); d >= 0 {
		return s + " (" + shortDuration(d) + " ago)"
	}
	return s + " (in " + shortDuration(t.Sub(now)) + ")"
}

func printDetail(w io.Writer, d *queue.Detail, now time.Time) {
	m := d.Message
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "message\t%d\n", m.ID)
	fmt.Fprintf(tw, "from\t<%s>\n", m.MailFrom)
	if m.Account != "" {
		fmt.Fprintf(tw, "account\t%s\n", m.Account)
	}
	fmt.Fprintf(tw, "queued\t%s\n", when(m.Created, now))
	fmt.Fprintf(tw, "size\t%d octets\n", m.Size)
	if m.EnvID != "" {
		fmt.Fprintf(tw, "envid\t%s\n", m.EnvID)
	}
	if m.Ret != "" {
		fmt.Fprintf(tw, "ret\t%s\n", m.Ret)
	}
	var flags []string
	if m.SMTPUTF8 {
		flags = append(flags, "SMTPUTF8")
	}
	if m.BodyType != "" {
		flags = append(flags, m.BodyType)
	}
	if len(flags) > 0 {
		fmt.Fprintf(tw, "body\t%s\n", strings.Join(flags, " "))
	}
	fmt.Fprintf(tw, "status\t%s\n", statusCell(queue.Message{Held: m.Held, Sending: m.Sending, Attempts: m.Attempts}))
	fmt.Fprintf(tw, "attempts\t%d\n", m.Attempts)
	fmt.Fprintf(tw, "last attempt\t%s\n", when(m.LastAttempt, now))
	switch {
	case m.Held:
		fmt.Fprintf(tw, "next attempt\theld (posta queue release %d)\n", m.ID)
	case m.NextAttempt.IsZero() || !m.NextAttempt.After(now):
		fmt.Fprintf(tw, "next attempt\tnow\n")
	default:
		fmt.Fprintf(tw, "next attempt\t%s\n", when(m.NextAttempt, now))
	}
	if m.Expires.IsZero() {
		fmt.Fprintf(tw, "expires\tset when first tried\n")
	} else {
		fmt.Fprintf(tw, "expires\t%s\n", when(m.Expires, now))
	}
	notice := "not sent"
	if m.DelayNotified {
		notice = "sent"
	}
	fmt.Fprintf(tw, "delay notice\t%s\n", notice)
	if m.LastError != "" {
		fmt.Fprintf(tw, "last error\t%s\n", m.LastError)
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RECIPIENT\tSTATE\tNOTIFY\tLAST ATTEMPT\tLAST REPLY")
	for _, r := range d.Recipients {
		state := string(r.State)
		if r.Expired {
			state += " (expired)"
		}
		if r.DSNPending {
			state += ", DSN owed"
		}
		notify := strings.Join(r.Notify, ",")
		if notify == "" {
			notify = "-"
		}
		last := "-"
		if !r.LastAttempt.IsZero() {
			last = shortDuration(now.Sub(r.LastAttempt)) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Address, state, notify, last, clip(replyCell(r), 100))
	}
	tw.Flush()
}

func replyCell(r queue.RecipientStatus) string {
	var parts []string
	if r.Code != 0 {
		parts = append(parts, strconv.Itoa(r.Code))
		if r.Enhanced != "" && !strings.HasPrefix(r.Text, r.Enhanced) {
			parts = append(parts, r.Enhanced)
		}
	}
	if r.Text != "" {
		parts = append(parts, strings.Join(strings.Fields(r.Text), " "))
	}
	if r.RemoteMTA != "" {
		parts = append(parts, "("+r.RemoteMTA+")")
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}
