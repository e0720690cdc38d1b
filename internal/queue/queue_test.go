package queue

import (
	"context"
	"reflect"
	"testing"

	"posta/internal/database"
)

func TestEnqueueSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := database.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	q, err := Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	id, err := q.Enqueue(ctx, Message{Blob: "0123456789abcdef0123456789abcdef", BodyOffset: 30, Size: 100, MailFrom: "alice@example.test",
		Account: "alice@example.test", Ret: "HDRS", Recipients: []Recipient{{Address: "x@remote.test", Notify: []string{"FAILURE", "DELAY"}},
			{Address: "y@remote.test"}, {Address: "x@remote.test"}}})
	if err != nil || id == 0 {
		t.Fatal(id, err)
	}
	db.Close()
	db, err = database.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q, err = Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := q.List(ctx)
	if err != nil || len(ms) != 1 {
		t.Fatal(ms, err)
	}
	m := ms[0]
	if m.BodyOffset != 30 || m.Ret != "HDRS" || len(m.Recipients) != 2 ||
		!reflect.DeepEqual(m.Recipients[0], Recipient{Address: "x@remote.test", Notify: []string{"FAILURE", "DELAY"}}) {
		t.Fatalf("%+v", m)
	}
}
