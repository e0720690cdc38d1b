package main

import (
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"posta/internal/database"
	"posta/internal/queue"
)

// enqueueDirect puts messages in the queue of a data directory the way
// delivery does, for the CLI to find.
func enqueueDirect(t *testing.T, data string, ms ...queue.Message) []int64 {
	t.Helper()
	ctx := context.Background()
	db, err := database.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q, err := queue.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, m := range ms {
		id, err := q.Enqueue(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func TestQueueCommands(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	d := "--data=" + data
	if out := ok(t, "", "queue", "list", d); out != "ID  AGE  FROM  TO  ATTEMPTS  NEXT  STATUS\n" {
		t.Fatalf("empty queue list: %q", out)
	}
	now := time.Now()
	enqueueDirect(t, data,
		queue.Message{Blob: "0123456789abcdef0123456789abcdef", Size: 1234, MailFrom: "alice@example.test", Account: "alice@example.test",
			EnvID: "env-7", Ret: "HDRS", Created: now.Add(-2*time.Hour - 5*time.Minute),
			Recipients: []queue.Recipient{{Address: "bob@remote.test", Notify: []string{"FAILURE", "DELAY"}}, {Address: "carol@other.test"}}},
		queue.Message{Blob: "fedcba9876543210fedcba9876543210", Size: 99, MailFrom: "", Created: now.Add(-30 * time.Second),
			Recipients: []queue.Recipient{{Address: "dave@remote.test"}}},
	)
	out := ok(t, "", "queue", "list", d)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("queue list:\n%s", out)
	}
	for i, re := range []string{
		`^ID +AGE +FROM +TO +ATTEMPTS +NEXT +STATUS$`,
		`^1 +2h5m +alice@example\.test +bob@remote\.test \+1 +0 +now +queued$`,
		`^2 +[0-9]+s +<> +dave@remote\.test +0 +now +queued$`,
	} {
		if !regexp.MustCompile(re).MatchString(lines[i]) {
			t.Fatalf("queue list line %d:\n%q\ndoes not match %s", i, lines[i], re)
		}
	}

	out = ok(t, "", "queue", "show", "1", d)
	for _, want := range []string{"message       1\n", "from          <alice@example.test>\n", "envid         env-7\n", "ret           HDRS\n",
		"size          1234 octets\n", "status        queued\n", "delay notice  not sent\n",
		"RECIPIENT         STATE   NOTIFY         LAST ATTEMPT  LAST REPLY\n",
		"bob@remote.test   queued  FAILURE,DELAY  -             -\n",
		"carol@other.test  queued  -              -             -\n"} {
		if !strings.Contains(out, want) {
			t.Fatalf("queue show lacks %q:\n%s", want, out)
		}
	}

	ok(t, "", "queue", "hold", "1", d)
	if out := ok(t, "", "queue", "list", d); !regexp.MustCompile(`(?m)^1 .* held +held$`).MatchString(out) {
		t.Fatalf("held message listed as:\n%s", out)
	}
	if out := ok(t, "", "queue", "retry", "1", d); !strings.Contains(out, "message 1 is due now\nit is held: send it with posta queue release 1\n") {
		t.Fatalf("retry of a held message: %q", out)
	}
	if out := ok(t, "", "queue", "retry", "all", d); out != "1 messages due now\n" {
		t.Fatalf("retry all: %q", out)
	}
	if out := ok(t, "", "queue", "release", "1", d); out != "released message 1\n" {
		t.Fatalf("release: %q", out)
	}
	if out := ok(t, "", "queue", "drop", "2", d); out != "dropped message 2\n" {
		t.Fatalf("drop: %q", out)
	}
	out = ok(t, "", "queue", "list", d)
	if strings.Contains(out, "dave@") || !strings.Contains(out, "bob@remote.test") {
		t.Fatalf("after drop:\n%s", out)
	}

	fails(t, "", "no such queued message: 2", "queue", "show", "2", d)
	fails(t, "", "no such queued message: 2", "queue", "drop", "2", d)
	fails(t, "", "no such queued message: 9", "queue", "hold", "9", d)
	fails(t, "", "no such queued message: 9", "queue", "release", "9", d)
	fails(t, "", "no such queued message: 9", "queue", "retry", "9", d)
	var ue usageError
	if err := fails(t, "", `bad message id "x1"`, "queue", "show", "x1", d); !errors.As(err, &ue) {
		t.Fatalf("a bad id is not a usage error: %T", err)
	}
	if err := fails(t, "", "accepts 1 arg(s)", "queue", "retry", d); !errors.As(err, &ue) {
		t.Fatalf("a missing id is not a usage error: %T", err)
	}
	if err := fails(t, "", `unknown command "flush" for "posta queue"`, "queue", "flush", d); !errors.As(err, &ue) {
		t.Fatalf("unknown subcommand: %v", err)
	}
}
